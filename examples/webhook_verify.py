"""Verify a waz-actors webhook delivery (docs/webhooks.md), with the standard library only.

In your endpoint: the RAW body bytes (before any JSON parsing), the X-Waz-Signature header and
the secret webhook.create gave you. From the command line (the test suite): the raw body on
stdin, the header as argument, the secret in WAZ_WEBHOOK_SECRET.
"""

import hashlib
import hmac
import os
import sys


def waz_verify(secret: str, raw: bytes, header: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)  # constant time


if __name__ == "__main__":
    ok = waz_verify(os.environ["WAZ_WEBHOOK_SECRET"], sys.stdin.buffer.read(), sys.argv[1])
    print("valid" if ok else "INVALID")
    sys.exit(0 if ok else 1)
