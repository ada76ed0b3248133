"""Regression: right after (re)start, `message.send` to an existing instance said `not_found`.

Found by the chaos run: after a `kill -9` and restart, a few sends got `not_found` for instances
that exist in the store (and in the config). The control socket answers as soon as it is bound,
while the supervisor is still spawning instance actors one by one, and the command looks the
instance up among the spawned children. A client (a PHP panel) must treat `not_found` as final,
so these messages are dropped by the client: a loss the daemon caused by answering wrongly.
Now: the send is accepted (the instance exists and the message can be queued durably), or
at worst a retryable error (`busy`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _common import ClientError, DaemonProcess, config_toml

from tests.waiting import wait_until

pytestmark = pytest.mark.timeout(60)

N = 300  # enough instances that spawning them all outlasts the first request


def test_send_right_after_start_is_not_not_found(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        config_toml(
            {"daemon": {"connect_rate": 2000.0, "log_level": "WARNING", "time_scale": 0.01}},
            [{"id": f"i{k:04d}", "driver": "sim", "tenant": "t1"} for k in range(N)],
        )
    )
    daemon = DaemonProcess(cfg, tmp_path / "state", tmp_path / "run")
    daemon.start()
    try:
        client = daemon.wait_ready(30)
        try:
            reply = client.message_send(f"i{N - 1:04d}", "6281234567890", text="first")
        except ClientError as e:
            assert e.code == "busy", f"existing instance refused with {e.code}: {e.message}"
        else:
            assert reply["status"] == "queued"
            # ...and it is delivered once that instance's actor has booted and connected.
            mid = reply["message_id"]
            wait_until(
                lambda: client.message_get(mid)["status"] == "sent",
                timeout=30,
                what="the early send delivered",
            )
        client.close()
    finally:
        daemon.stop(30)
