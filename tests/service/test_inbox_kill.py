"""A received message is durable before its `message.<id>.in` event: kill -9 the daemon the
moment a client sees the event, start it again, and the message is in the inbox. Over the real
sockets of a real `waz-actors run` subprocess (issue 12)."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.service.daemon_proc import DaemonProc, config_text
from tests.waiting import wait_until
from waz_actors.control.client import EventStream


def test_incoming_survives_kill_9(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path, config_text(["rx"]))
    d2: DaemonProc | None = None
    try:
        d.notify.wait_for("READY=1")
        events = f"ipc://{d.run_dir.resolve()}/events.sock"
        with d.client() as c, EventStream(events, ["message.rx.in"]) as stream:
            wait_until(lambda: c.instance_get("rx")["state"] == "online", timeout=20.0)
            groups = c.group_list("rx")
            assert len(groups) == 3 and groups[0]["id"].endswith("@g.us")
            answer = c.contact_check("rx", ["5511900000001", "5511900000010"])
            assert [x["on_whatsapp"] for x in answer] == [True, False]
            # the SUB socket joins asynchronously: inject until the first event shows
            got = None
            for n in range(50):
                c.sim_fault("rx", "incoming", text=f"hello {n}", wa_id=f"K{n}")
                got = stream.recv(timeout=0.5)
                if got is not None:
                    break
            assert got is not None, "no message.rx.in event"
            d.signal(signal.SIGKILL)  # at once: nothing may be flushed after the event
        assert d.wait(10) == -signal.SIGKILL
        topic, body = got
        assert topic == "message.rx.in" and body["text"].startswith("hello")

        d2 = DaemonProc(tmp_path, config_text(["rx"]))
        d2.notify.wait_for("READY=1")
        with d2.client() as c:
            stored = c.inbox_list("rx")["messages"]
            assert body["inbox_id"] in [m["inbox_id"] for m in stored]
            mine = next(m for m in stored if m["inbox_id"] == body["inbox_id"])
            assert mine == body
    finally:
        d.close()
        if d2 is not None:
            d2.close()
