"""The delivery worker is a process of its own: killed, the daemon starts it again and nothing
is lost (the outbox is on disk; what it had done but not written is done again, same event
ids); it never outlives its daemon; a webhook created after events were written does not get
them, though the worker fans them out later. (test_kill9: it dies with its daemon.)"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.control.dispatch_util import PHONE, Core
from tests.waiting import wait_until
from tests.webhooks.conftest import hooked_core
from tests.webhooks.receiver import Receiver


def delivery_pids(parent: int) -> list[int]:
    """The daemon's delivery worker processes (its children running waz_actors.delivery)."""
    out = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"waz_actors.delivery" in cmd:
                out.append(int(child))
    return out


def restarted(pid: int | None) -> bytes | None:
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(
        (v.split(b"=", 1)[1] for v in env if v.startswith(b"WAZ_DELIVERY_RESTARTED=")), None
    )


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def statuses_seen(r: Receiver) -> set[tuple[str, str]]:
    return {(e["data"]["message_id"], e["data"]["status"]) for e in r.events()}


def test_a_killed_worker_is_started_again_and_nothing_is_lost(
    hooked: Core, receiver: Receiver
) -> None:
    acme = hooked.tenant("acme")
    hook = acme.ok("webhook.create", url=receiver.url(), events=["message.status"])
    acme.ok("instance.create", driver="sim", instance_id="a1")
    hooked.online(acme, "a1")
    process = hooked.daemon.delivery
    assert process is not None
    first = wait_until(lambda: process.pid, what="the worker started with the first webhook")
    assert delivery_pids(os.getpid()) == [first] and restarted(first) == b"0"
    receiver.down()  # the deliveries wait (pending, or events not fanned out yet) ...
    ids = [
        acme.ok("message.send", instance_id="a1", to=PHONE, text=f"m{i}")["message_id"]
        for i in range(10)
    ]
    wait_until(lambda: all(acme.ok("message.get", message_id=m)["status"] == "sent" for m in ids))
    os.kill(first, signal.SIGKILL)  # ... when the worker dies
    wait_until(lambda: process.pid != first and process.starts == 2, what="a new worker")
    assert not alive(first)
    # told it follows a worker known dead (in a cluster: it takes its node's claims back)
    assert restarted(process.pid) == b"1"
    receiver.up()
    want = {(m, s) for m in ids for s in ("queued", "sending", "sent")}
    wait_until(lambda: statuses_seen(receiver) >= want, timeout=30, what="every event")
    assert all(hit.signed_by(hook["secret"]) for hit in receiver.hits)
    wait_until(
        lambda: (
            acme.ok("webhook.get", webhook_id=hook["webhook_id"])["deliveries"] == {"delivered": 30}
        )
    )


def test_no_webhook_no_worker_process(hooked: Core, receiver: Receiver) -> None:
    """A daemon without webhooks runs no worker; the first webhook starts it."""
    process = hooked.daemon.delivery
    assert process is not None and process.pid is None
    assert delivery_pids(os.getpid()) == []
    hooked.tenant("acme").ok("webhook.create", url=receiver.url())
    wait_until(lambda: process.pid is not None and delivery_pids(os.getpid()) == [process.pid])


def test_a_webhook_gets_no_event_from_before_it(hooked: Core, receiver: Receiver) -> None:
    acme = hooked.tenant("acme")
    acme.ok("webhook.create", url=receiver.url("/early"), events=["message.status"])
    acme.ok("instance.create", driver="sim", instance_id="a1")
    hooked.online(acme, "a1")
    before = acme.ok("message.send", instance_id="a1", to=PHONE, text="x")["message_id"]
    wait_until(lambda: acme.ok("message.get", message_id=before)["status"] == "sent")
    acme.ok("webhook.create", url=receiver.url("/late"), events=["message.status"])
    after = acme.ok("message.send", instance_id="a1", to=PHONE, text="y")["message_id"]
    wait_until(lambda: {e["data"]["message_id"] for e in receiver.events("/late")} == {after})
    wait_until(lambda: len(receiver.events("/early")) == 6)  # both messages' three statuses
    assert {e["data"]["message_id"] for e in receiver.events("/early")} == {before, after}


def test_the_worker_can_run_under_sched_idle(tmp_path: Path, receiver: Receiver) -> None:
    """webhooks.worker_sched_idle: the worker's policy is SCHED_IDLE, and on this machine
    (whatever spare CPU the suite leaves) its deliveries still arrive."""
    core = hooked_core(tmp_path, worker_sched_idle=True)
    try:
        acme = core.tenant("acme")
        acme.ok("webhook.create", url=receiver.url(), events=["message.status"])
        acme.ok("instance.create", driver="sim", instance_id="a1")
        core.online(acme, "a1")
        process = core.daemon.delivery
        assert process is not None
        pid = wait_until(lambda: process.pid, what="the worker started")
        # set by the worker itself, first thing after its imports
        wait_until(lambda: os.sched_getscheduler(pid) == os.SCHED_IDLE, what="SCHED_IDLE")
        assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the daemon's own: unchanged
        m = acme.ok("message.send", instance_id="a1", to=PHONE, text="x")["message_id"]
        wait_until(lambda: (m, "sent") in statuses_seen(receiver), timeout=30)
    finally:
        core.dispatcher.close()
        core.daemon.stop(timeout=5)
