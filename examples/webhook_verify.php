<?php
// Verify a waz-actors webhook delivery (docs/webhooks.md).
//
// In your endpoint: the RAW body (php://input, before any json_decode), the X-Waz-Signature
// header, and the secret webhook.create gave you. Answer 2xx quickly once verified; answer
// 410 to make waz-actors disable the webhook. Deduplicate on X-Waz-Event-Id (at-least-once).

function waz_verify(string $secret, string $raw, string $header): bool
{
    $expected = 'sha256=' . hash_hmac('sha256', $raw, $secret);
    return hash_equals($expected, $header);  // constant time
}

if (PHP_SAPI !== 'cli') {
    $raw = file_get_contents('php://input');
    $header = $_SERVER['HTTP_X_WAZ_SIGNATURE'] ?? '';
    if (!waz_verify(getenv('WAZ_WEBHOOK_SECRET'), $raw, $header)) {
        http_response_code(401);
        exit;
    }
    $event = json_decode($raw, true);
    // ... handle $event['event'] / $event['data'], keyed by $event['id'] ...
    http_response_code(204);
    exit;
}

// From the command line (the test suite): the raw body on stdin, the header as argument.
$raw = stream_get_contents(STDIN);
$ok = waz_verify(getenv('WAZ_WEBHOOK_SECRET'), $raw, $argv[1] ?? '');
echo $ok ? "valid\n" : "INVALID\n";
exit($ok ? 0 : 1);
