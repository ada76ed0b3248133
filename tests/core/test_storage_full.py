"""A full disk: a message goes out only once its `sending` status is durable; while the store
cannot write, sending pauses with an alarm and resumes by itself; after a restart nothing is
sent twice and nothing is lost (invariants 4 and 5, docs/design.md "Store").

The only fault injected is the disk's (tests/store/store_helpers.FullDisk: SQLite's "database
or disk is full" on commit); the store, the instance and the sim network are the real ones.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from tests.core.daemon_util import FAST, fast_config, send, state_of, statuses
from tests.core.harness import Bench, quick_config
from tests.store.store_helpers import fill_disk
from tests.waiting import wait_until
from waz_actors.actors.instance import Instance
from waz_actors.actors.messages import Cancel
from waz_actors.app.runtime import Daemon
from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.store import Store
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M


def restart(b: Bench) -> Instance:
    """What a daemon restart does to the instance: a fresh store connection, `sending` back to
    `queued`, a fresh Instance that loads its queue. The sim network is the same WhatsApp."""
    assert b.instance is not None
    b.instance.shutdown()
    b.store.close()
    b.inbox.clear()
    b.store = Store(b.store.path)
    b.store.open()
    b.store.recover_sending()
    b.deps = dataclasses.replace(b.deps, store=b.store)
    rec = b.store.get_instance("i1")
    assert rec is not None
    b.instance = Instance(b.deps, rec, b.inbox.append)
    b.instance.boot()
    b.settle()
    return b.instance


def alarms(b: Bench) -> list[str]:
    return [body["kind"] for topic, body in b.events if topic == "daemon.alarm"]


def test_a_full_disk_pauses_sending_and_nothing_is_sent_twice(tmp_path: Path) -> None:
    b = Bench(tmp_path, quick_config(pacing_interval=1.0, pacing_jitter=0.0))
    try:
        b.create()
        b.run_until(lambda: b.instance is not None and b.instance.state == S.ONLINE, limit=5)
        disk = fill_disk(b.store)
        ids = [b.send(f"m{i}").message_id for i in range(20)]
        b.run_until(lambda: len(b.net.delivered_ids("i1")) >= 5, limit=600)

        disk.full = True
        before = len(b.net.delivered_ids("i1"))
        b.run(300)  # five daemon minutes of full disk
        assert disk.refused > 0
        # Nothing goes out whose `sending` is not on disk: at most the send already in flight.
        assert len(b.net.delivered_ids("i1")) <= before + 1
        assert alarms(b) == ["storage_full"]  # raised once, not once per attempt

        disk.full = False  # space is back: sending resumes by itself, no operator action
        b.run_until(lambda: len(b.net.delivered_ids("i1")) == 20, limit=600)
        b.run(10)
        assert alarms(b) == ["storage_full", "storage_recovered"]
        assert [b.status_of(i) for i in ids] == [M.SENT] * 20  # every outcome is durable

        restart(b)
        b.run(600)
        assert b.stats()["duplicates"] == 0
        assert sorted(b.net.delivered_ids("i1")) == sorted(ids)
        assert [b.status_of(i) for i in ids] == [M.SENT] * 20
    finally:
        b.close()


def test_a_status_write_lost_to_the_disk_is_written_again(tmp_path: Path) -> None:
    """The outcome of a send made before the disk filled must not be lost either: a `sent`
    that never reached the disk makes the next daemon send the message again."""
    b = Bench(tmp_path, quick_config(pacing_interval=0.0))
    try:
        b.create()
        b.run_until(lambda: b.instance is not None and b.instance.state == S.ONLINE, limit=5)
        disk = fill_disk(b.store)
        b.net.inject("i1", "latency", send=10.0)
        msg = b.send()
        assert b.status_of(msg.message_id) == M.SENDING  # durable, and the driver has it
        disk.full = True
        b.run(11)  # the send succeeds while the disk is full: its `sent` cannot be written
        assert alarms(b) == ["storage_full"]
        disk.full = False
        b.run(120)
        assert b.status_of(msg.message_id) == M.SENT
        restart(b)
        b.run(60)
        assert b.stats()["duplicates"] == 0
        assert b.net.delivered_ids("i1") == [msg.message_id]
    finally:
        b.close()


@pytest.fixture
def shared_sim() -> Any:
    clock = RealClock(FAST)
    sched = Scheduler(clock)
    sched.start()
    yield SimNetwork(sched, clock, connect_latency=0.5, send_latency=0.2, rand=random.Random(5))
    sched.stop()


def test_daemon_full_disk_then_restart_delivers_each_message_once(
    tmp_path: Path, shared_sim: SimNetwork
) -> None:
    """Item 12 as reported: twenty messages, the disk fills during the sends and frees again,
    the daemon restarts: each message delivered exactly once, none lost."""
    cfg = fast_config(tmp_path, instances=1, queue={"pacing_interval": 20.0})
    d = Daemon(cfg, with_control=False, sim=shared_sim)
    d.start()
    try:
        wait_until(lambda: state_of(d, "i0") == "online", what="online", timeout=10.0)
        disk = fill_disk(d.store)
        ids = [send(d, "i0", f"m{n}").message_id for n in range(20)]
        wait_until(lambda: len(shared_sim.delivered_ids("i0")) >= 3, what="sends", timeout=10.0)
        disk.full = True
        wait_until(lambda: disk.refused >= 20, what="writes refused", timeout=10.0)
        disk.full = False
        wait_until(lambda: statuses(d, ids) == ["sent"] * 20, what="all sent", timeout=30.0)
    finally:
        d.stop()
    d2 = Daemon(cfg, with_control=False, sim=shared_sim)
    d2.start()
    try:
        wait_until(lambda: state_of(d2, "i0") == "online", what="online again", timeout=10.0)
        snap = d2.board.get("i0")
        assert snap is not None and snap.queue_depth == 0 and snap.in_flight == 0
    finally:
        d2.stop()
    assert shared_sim.stats()["totals"]["duplicates"] == 0
    assert sorted(shared_sim.delivered_ids("i0")) == sorted(ids)


def test_a_message_written_sending_ahead_is_still_cancellable_and_requeued(tmp_path: Path) -> None:
    """With pacing off the next message's `sending` is written while one is in flight; it is
    not being sent, so a cancel still works and a closed session puts it back to `queued`."""
    b = Bench(tmp_path, quick_config(pacing_interval=0.0))
    try:
        b.create()
        b.run_until(lambda: b.instance is not None and b.instance.state == S.ONLINE, limit=5)
        b.net.inject("i1", "latency", send=10.0)
        first, second, third = b.send("a"), b.send("b"), b.send("c")
        assert b.status_of(first.message_id) == M.SENDING
        assert b.status_of(second.message_id) == M.SENDING  # written ahead
        assert b.status_of(third.message_id) == M.QUEUED
        assert b.command(Cancel, message_id=second.message_id).result(1) == "cancelled"
        assert b.status_of(second.message_id) == M.CANCELLED
        fourth = b.send("d")  # written ahead in its turn
        assert b.status_of(third.message_id) == M.SENDING
        assert b.status_of(fourth.message_id) == M.QUEUED
        b.net.inject("i1", "disconnect")
        b.run(1)
        assert b.status_of(first.message_id) == M.QUEUED  # outcome unknown: same id again
        assert b.status_of(third.message_id) == M.QUEUED
        b.net.inject("i1", "latency", send=0.2)
        b.run_until(lambda: b.status_of(fourth.message_id) == M.SENT, limit=3600)
        assert [b.status_of(m.message_id) for m in (first, third)] == [M.SENT, M.SENT]
        sent = [first.message_id, third.message_id, fourth.message_id]
        assert b.net.delivered_ids("i1") == sent  # in order, the cancelled one never
        assert b.stats()["duplicates"] == 0
    finally:
        b.close()


def test_a_full_disk_is_no_dead_session(tmp_path: Path) -> None:
    """While the store cannot write nothing is sent, so a silent network is expected: the
    liveness check ("sends pending, nothing heard") must not recycle the session for it."""
    b = Bench(tmp_path, quick_config(pacing_interval=0.0))
    try:
        inst = b.create()
        b.run_until(lambda: inst.state == S.ONLINE, limit=5)
        disk = fill_disk(b.store)
        b.net.inject("i1", "latency", send=10.0)
        first, _, third = b.send("a"), b.send("b"), b.send("c")
        disk.full = True  # the first one's `sent` cannot be written: sending pauses
        b.run(10 * b.cfg.connection.keepalive * 3)
        assert disk.refused > 0
        assert b.store.get_message(first.message_id).status == M.SENDING  # its `sent` unsaved
        assert inst.state == S.ONLINE and inst.connection.liveness.recycles == 0
        disk.full = False
        b.run_until(lambda: b.status_of(third.message_id) == M.SENT, limit=600)
        assert b.status_of(first.message_id) == M.SENT
    finally:
        b.close()
