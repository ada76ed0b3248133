"""Run by tests/whatsmeow/test_pg_sessions.py in its own process: open a session location with the
real library (neonize NewClient + connect through a refusing loopback proxy), then print JSON with
the connect error and, with --me, the device whatsmeow loaded from the store (get_me)."""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from neonize._binder import ProxySettings
    from neonize.client import NewClient

    location, proxy = argv[0], argv[1]
    client = NewClient(location, uuid="probe.1")
    error = ""
    try:
        client.connect(ProxySettings(proxy_address=proxy))
    except Exception as e:
        error = str(e)
    out: dict[str, object] = {"error": error}
    if "--me" in argv:  # only with a stored device: without one the library dereferences nil
        me = client.get_me()
        out["me"] = {"user": me.JID.User, "device": me.JID.Device, "push_name": me.PushName}
    print("PROBE " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
