"""waz-actors control protocol from Python, with the project's client library.

    WAZ_ENDPOINT=ipc:///run/waz-actors/control.sock WAZ_TOKEN=waz_... WAZ_INSTANCE=shop-1 \
        python examples/python_client.py 5511999999999 "hello"

Without WAZ_TOKEN it reads the admin token from $WAZ_STATE_DIR/admin.token.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

from waz_actors.control.client import Client, ClientError, Unreachable


def main(argv: list[str]) -> int:
    endpoint = os.environ.get("WAZ_ENDPOINT", "ipc:///run/waz-actors/control.sock")
    token = (
        os.environ.get("WAZ_TOKEN")
        or (Path(os.environ.get("WAZ_STATE_DIR", "/var/lib/waz-actors")) / "admin.token")
        .read_text()
        .strip()
    )
    instance = os.environ.get("WAZ_INSTANCE", "shop-1")
    to = argv[1] if len(argv) > 1 else "5511999999999"
    text = argv[2] if len(argv) > 2 else "hello from python"

    with Client(endpoint, token, timeout=5.0) as client:
        try:
            pong = client.ping()
            print(f"ping: daemon {pong['version']}, up {pong['uptime']:.1f} s")

            inst = client.instance_get(instance)
            print(f"instance {instance}: {inst['state']}, queue depth {inst['queue_depth']}")

            # The idempotency key makes a retry after a timeout safe: same key, same message.
            key = f"order-{uuid.uuid4().hex[:12]}"
            sent = client.message_send(instance, to, text=text, idempotency_key=key)
            print(f"sent: {sent['message_id']} {sent['status']}")
            again = client.message_send(instance, to, text=text, idempotency_key=key)
            print(
                f"resent with the same key: {again['message_id']} (same id: "
                f"{again['message_id'] == sent['message_id']})"
            )

            msg = client.message_get(sent["message_id"])
            print(f"message {msg['message_id']}: {msg['status']}, attempts {msg['attempts']}")

            status = client.queue_status(instance)
            print(f"queue: depth {status['depth']}, health {status['health']}")
        except ClientError as e:
            # e.code is the protocol error code; e.details["field"] names a bad argument.
            print(f"error {e.code}: {e.message} {e.details}", file=sys.stderr)
            return 1
        except Unreachable as e:
            print(f"daemon unreachable: {e}", file=sys.stderr)
            return 2

        try:
            client.message_send(instance, "not-a-number", text="x")
        except ClientError as e:
            print(f"bad input is refused: {e.code} on field {e.details.get('field')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
