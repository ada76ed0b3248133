<?php
// waz-actors control protocol v1 from PHP (php-cli, php-zmq, php-msgpack; Debian:
// apt-get install php-cli php-zmq php-msgpack).
//
//   WAZ_ENDPOINT=ipc:///run/waz-actors/control.sock WAZ_TOKEN=waz_... WAZ_INSTANCE=shop-1 \
//       php examples/php_client.php 5511999999999 "hello"

declare(strict_types=1);

final class WazError extends RuntimeException
{
    public function __construct(public string $codeName, string $message, public array $details)
    {
        parent::__construct("$codeName: $message");
    }
}

final class WazClient
{
    private ZMQSocket $sock;
    private int $next = 0;

    public function __construct(string $endpoint, private string $token, private int $timeoutMs = 5000)
    {
        $this->sock = new ZMQSocket(new ZMQContext(), ZMQ::SOCKET_DEALER);
        $this->sock->setSockOpt(ZMQ::SOCKOPT_LINGER, 0);
        $this->sock->connect($endpoint);
    }

    /** One request, one reply; replies are matched by id. */
    public function call(string $cmd, array $args = []): array
    {
        $id = ++$this->next;
        $request = ['v' => 1, 'id' => $id, 'cmd' => $cmd, 'token' => $this->token];
        if ($args) {
            $request['args'] = $args; // an associative array packs as a msgpack map
        }
        $this->sock->send(msgpack_pack($request));
        $poll = new ZMQPoll();
        $poll->add($this->sock, ZMQ::POLL_IN);
        $readable = $writable = [];
        while (true) {
            if ($poll->poll($readable, $writable, $this->timeoutMs) === 0) {
                // Not safe to resend a write blindly: use an idempotency_key for message.send.
                throw new RuntimeException("no reply to $cmd within {$this->timeoutMs} ms");
            }
            $reply = msgpack_unpack($this->sock->recv());
            if (!is_array($reply) || ($reply['id'] ?? null) !== $id) {
                continue; // a late reply to an earlier request
            }
            if ($reply['ok']) {
                return $reply['result'];
            }
            $e = $reply['error'];
            throw new WazError($e['code'], $e['message'], $e['details'] ?? []);
        }
    }
}

$endpoint = getenv('WAZ_ENDPOINT') ?: 'ipc:///run/waz-actors/control.sock';
$token = getenv('WAZ_TOKEN') ?: trim((string) file_get_contents(
    (getenv('WAZ_STATE_DIR') ?: '/var/lib/waz-actors') . '/admin.token'));
$instance = getenv('WAZ_INSTANCE') ?: 'shop-1';
$to = $argv[1] ?? '5511999999999';
$text = $argv[2] ?? 'hello from php';

$client = new WazClient($endpoint, $token);
try {
    $pong = $client->call('ping');
    printf("ping: daemon %s, up %.1f s\n", $pong['version'], $pong['uptime']);

    $inst = $client->call('instance.get', ['instance_id' => $instance]);
    printf("instance %s: %s, queue depth %d\n", $instance, $inst['state'], $inst['queue_depth']);

    $key = 'order-' . bin2hex(random_bytes(6));
    $sent = $client->call('message.send', [
        'instance_id' => $instance,
        'to' => $to,
        'text' => $text,
        'idempotency_key' => $key,
    ]);
    printf("sent: %s %s\n", $sent['message_id'], $sent['status']);

    $again = $client->call('message.send', [
        'instance_id' => $instance, 'to' => $to, 'text' => $text, 'idempotency_key' => $key,
    ]);
    printf("resent with the same key: %s (same id: %s)\n", $again['message_id'],
        $again['message_id'] === $sent['message_id'] ? 'yes' : 'no');

    $msg = $client->call('message.get', ['message_id' => $sent['message_id']]);
    printf("message %s: %s, attempts %d\n", $msg['message_id'], $msg['status'], $msg['attempts']);

    $queue = $client->call('queue.status', ['instance_id' => $instance]);
    printf("queue: depth %d, health %s\n", $queue['depth'], $queue['health']);
} catch (WazError $e) {
    fprintf(STDERR, "error %s: %s\n", $e->codeName, $e->getMessage());
    exit(1);
} catch (RuntimeException $e) {
    fprintf(STDERR, "daemon unreachable: %s\n", $e->getMessage());
    exit(2);
}

try {
    $client->call('message.send', ['instance_id' => $instance, 'to' => 'not-a-number', 'text' => 'x']);
} catch (WazError $e) {
    printf("bad input is refused: %s on field %s\n", $e->codeName, $e->details['field'] ?? '?');
}
