"""Accepted means delivered, across a receiver outage and a `kill -9` of the daemon: a real
`waz-actors run` subprocess, a real HTTP receiver that is down while the daemon dies with
deliveries pending, then a restart: every event arrives at least once, signed, and no other
tenant's."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.service.daemon_proc import DaemonProc, config_text
from tests.waiting import wait_until
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_worker import alive, delivery_pids

PHONE = "5511999999999"
HOOKS = "[webhooks]\nallow_private_targets = true\npoll_interval = 0.05\n"


def test_pending_deliveries_survive_kill_9(tmp_path: Path) -> None:
    receiver = Receiver()
    receiver.down()  # the receiver is down while the daemon accepts and sends
    text = config_text(["i1"], extra=HOOKS)
    d = DaemonProc(tmp_path, text)
    d2: DaemonProc | None = None
    try:
        d.notify.wait_for("READY=1")
        with d.client() as c:
            hook = c.webhook_create(receiver.url("/t1"), events=["message.status"], tenant="t1")
            other = c.webhook_create(receiver.url("/t2"), tenant="t2")
            wait_until(lambda: c.instance_get("i1")["state"] == "online", timeout=20.0)
            ids = [c.message_send("i1", PHONE, text=f"m{i}")["message_id"] for i in range(20)]
            wait_until(lambda: all(c.message_get(m)["status"] == "sent" for m in ids), timeout=30.0)
            # every event is on disk with its send; the worker fans them out to deliveries
            # a moment later (queued, sending, sent)
            wait_until(
                lambda: (
                    c.webhook_get(hook["webhook_id"])["deliveries"].get("pending", 0)
                    >= 3 * len(ids)
                )
            )
        workers = delivery_pids(d.proc.pid)
        assert len(workers) == 1
        d.signal(signal.SIGKILL)
        assert d.wait(10) == -signal.SIGKILL
        # the worker sees its pipe from the daemon close and goes too: never two at once
        wait_until(lambda: not alive(workers[0]), what="the orphaned worker gone")

        receiver.up()
        d2 = DaemonProc(tmp_path, text)
        d2.notify.wait_for("READY=1")

        def sent_seen() -> set[str]:
            return {
                e["data"]["message_id"]
                for e in receiver.events("/t1")
                if e["data"]["status"] == "sent"
            }

        wait_until(lambda: sent_seen() >= set(ids), timeout=60.0, what="every sent event")
        for hit in receiver.of("/t1"):
            assert hit.signed_by(hook["secret"])
            assert hit.body["tenant"] == "t1" and hit.body["event"] == "message.status"
        assert receiver.of("/t2") == []  # t2 has no instance: none of t1's events
        # every status of every message, at least once (duplicates carry the same event id)
        seen = {(e["data"]["message_id"], e["data"]["status"]) for e in receiver.events("/t1")}
        for m in ids:
            assert {(m, "queued"), (m, "sending"), (m, "sent")} <= seen, m
        with d2.client() as c:
            wait_until(
                lambda: c.webhook_get(hook["webhook_id"])["deliveries"].get("pending", 0) == 0
            )
            assert c.webhook_get(other["webhook_id"])["deliveries"] == {}
    finally:
        d.close()
        if d2 is not None:
            d2.close()
        receiver.close()
