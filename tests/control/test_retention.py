"""The running daemon prunes on its own (issue 11, item 10): a delivered message older than
retention_days disappears, a queued one stays however old."""

from __future__ import annotations

from collections.abc import Callable

from tests.control.conftest import TestDaemon, online, wait_until
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client, ClientError

PHONE = "5511999999999"


def gone(admin: Client, message_id: str) -> bool:
    try:
        admin.message_get(message_id)
    except ClientError as e:
        return e.code == "not_found"
    return False


def test_the_daemon_prunes_final_messages_periodically(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    # 2e-5 days is under 2 s: old enough soon, young enough to see the message first
    d = start_daemon(store={"retention_days": 2e-5, "prune_interval": 0.05})
    with Client(d.cfg.control_endpoint, read_admin_token(d.cfg.state_dir), timeout=5) as admin:
        admin.instance_create("sim", "live")
        admin.instance_create("sim", "idle")  # never started: its message stays queued
        online(admin, "live")
        sent = admin.message_send("live", PHONE, text="goes")["message_id"]
        waiting = admin.message_send("idle", PHONE, text="stays")["message_id"]
        wait_until(lambda: admin.message_get(sent)["status"] == "sent")
        wait_until(lambda: gone(admin, sent), timeout=15, every=0.1)
        runs = d.pruner.runs
        wait_until(lambda: d.pruner.runs > runs + 2, timeout=10)
        assert admin.message_get(waiting)["status"] == "queued"
        assert admin.queue_status("idle")["depth"] == 1
        assert d.store.recent_events(prefix="instance.live") == []  # old events went too
