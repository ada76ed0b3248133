"""The Instance state machine against docs/design.md's invariants, in compressed daemon time.

Real SQLite store, real SimNetwork; only the clock is fake (so an hour passes in milliseconds).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from tests.core.harness import Bench, quick_config
from waz_actors.actors.messages import Cancel, GetState, Pair, Reset, Restart, Start
from waz_actors.config import Config
from waz_actors.errors import InvalidState
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M


@pytest.fixture
def bench(tmp_path: Path):
    b = Bench(tmp_path)
    yield b
    b.close()


def online(b: Bench) -> bool:
    return b.instance is not None and b.instance.state == S.ONLINE


def test_starts_connects_and_sends(bench: Bench) -> None:
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    msg = bench.send()
    bench.run_until(lambda: bench.status_of(msg.message_id) == M.SENT, limit=10)
    assert bench.net.delivered_ids("i1") == [msg.message_id]
    assert inst.snapshot().sent == 1
    assert bench.store.get_message(msg.message_id).wa_id == msg.message_id  # invariant 5


def test_no_reconnect_right_after_conflict(bench: Bench) -> None:
    """Invariant 3: a 440 never triggers an immediate reconnect."""
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    connects = bench.stats()["connects"]
    bench.net.inject("i1", "conflict")
    bench.run_until(lambda: inst.state == S.COOLDOWN, limit=1)
    t_conflict = bench.clock.now()
    bench.run_until(lambda: bench.stats()["connects"] > connects, limit=3600)
    waited = bench.clock.now() - t_conflict
    cfg = bench.cfg
    assert waited >= cfg.conflict.cooldown
    # The throttle's gap after a conflict counts from the previous attempt.
    assert waited >= cfg.connection.throttle_after_conflict - 1.0
    bench.run_until(lambda: online(bench), limit=5)
    assert bench.stats()["conflicts_caused_by_ours"] == 0


def test_brief_online_does_not_reset_conflict_history(bench: Bench) -> None:
    """Invariant 3: conflicts separated by short online periods keep growing the cooldown."""
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    conflicts, breaker = inst.connection.conflicts, inst.connection.breaker
    cooldowns = []
    for _ in range(3):
        bench.net.inject("i1", "conflict")
        bench.run_until(lambda: inst.state == S.COOLDOWN, limit=1)
        cooldowns.append(conflicts.cooldown_for(conflicts.count(bench.clock.now())))
        bench.run_until(lambda: online(bench), limit=3600)
        bench.run(1.0)  # online for one second only (far below stable_after)
    assert conflicts.count(bench.clock.now()) == 3
    assert cooldowns == sorted(cooldowns) and cooldowns[2] > cooldowns[0]
    assert breaker.consecutive_failures >= 0  # breaker untouched by the brief onlines
    assert bench.stats()["conflicts_caused_by_ours"] == 0


def test_conflict_storm_trips_breaker(bench: Bench) -> None:
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    for _ in range(bench.cfg.conflict.trip_threshold):
        bench.run_until(lambda: online(bench), limit=7200)
        bench.net.inject("i1", "conflict")
        bench.run_until(lambda: inst.state in (S.COOLDOWN, S.TRIPPED), limit=1)
    assert inst.state == S.TRIPPED
    assert any(t == "daemon.alarm" and b["kind"] == "conflict_storm" for t, b in bench.events)
    # Tripped: nothing connects until the breaker's reset time has passed.
    connects = bench.stats()["connects"]
    bench.run(bench.cfg.breaker.reset_timeout - 1)
    assert bench.stats()["connects"] == connects


def test_breaker_trips_after_more_than_five_failed_attempts(bench: Bench) -> None:
    bench.net.inject("i1", "connect_fail", count=100)
    inst = bench.create()
    bench.run_until(lambda: inst.state == S.TRIPPED, limit=24 * 3600)
    assert bench.stats()["connects"] == bench.cfg.breaker.failure_threshold + 1
    states = bench.states()
    assert S.BACKOFF in states


def test_throttle_spaces_attempts(bench: Bench) -> None:
    """Attempts are at least 60 s apart, 120 s once more than 2 were made."""
    bench.net.inject("i1", "connect_fail", count=4)
    inst = bench.create()
    times = [bench.clock.now()]  # the first attempt happens at boot
    while len(times) < 5:
        last = bench.stats().get("connects", 0)
        bench.run_until(lambda last=last: bench.stats()["connects"] > last, limit=3600)
        times.append(bench.clock.now())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= 60 - 1e-6 for g in gaps), gaps
    assert all(g >= 120 - 1e-6 for g in gaps[2:]), gaps
    bench.run_until(lambda: online(bench), limit=3600)
    assert inst.connection.connect_attempts == 5


def test_disconnect_and_conflict_never_consume_a_retry(bench: Bench) -> None:
    """Invariant 4: a send cut off by a conflict goes back to the queue with its attempts."""
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    bench.net.inject("i1", "latency", send=50.0)  # the send result would arrive in 50 s
    msg = bench.send()
    assert inst.outbox.in_flight is not None
    bench.net.inject("i1", "conflict")
    bench.run_until(lambda: inst.state == S.COOLDOWN, limit=1)
    assert bench.status_of(msg.message_id) == M.QUEUED
    assert bench.store.get_message(msg.message_id).attempts == 0
    bench.net.inject("i1", "latency", send=0.2)
    bench.run_until(lambda: bench.status_of(msg.message_id) == M.SENT, limit=3600)
    rec = bench.store.get_message(msg.message_id)
    assert rec.attempts == 1
    assert bench.net.delivered_ids("i1").count(msg.message_id) == 1


def test_send_failures_retry_then_fail(tmp_path: Path) -> None:
    b = Bench(tmp_path, quick_config(pacing_interval=0.0))
    try:
        inst = b.create()
        b.run_until(lambda: online(b), limit=5)
        b.net.inject("i1", "send_fail", count=2)
        ok = b.send("retried")
        b.run_until(lambda: b.status_of(ok.message_id) == M.SENT, limit=600)
        assert b.store.get_message(ok.message_id).attempts == 3
        b.net.inject("i1", "send_fail", count=1 + b.cfg.queue.max_retries)
        bad = b.send("exhausted")
        b.run_until(lambda: b.status_of(bad.message_id) == M.FAILED, limit=3600)
        assert b.store.get_message(bad.message_id).attempts == 1 + b.cfg.queue.max_retries
        b.net.inject("i1", "send_fail", count=1, permanent=True)
        perm = b.send("permanent")
        b.run_until(lambda: b.status_of(perm.message_id) == M.FAILED, limit=600)
        assert b.store.get_message(perm.message_id).attempts == 1  # never retried
        hist = [h["status"] for h in b.store.history(bad.message_id)]
        assert hist[0] == M.QUEUED and hist[-1] == M.FAILED
        assert inst.state == S.ONLINE  # send failures never touch the connection
    finally:
        b.close()


def test_pacing_spaces_sends(bench: Bench) -> None:
    bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    sent_at: dict[str, float] = {}
    bench.bus.subscribe(
        "message.",
        lambda t, body: (
            sent_at.setdefault(body["message_id"], bench.clock.now())
            if body["status"] == "sending"
            else None
        ),
    )
    msgs = [bench.send(f"m{i}") for i in range(5)]
    bench.run_until(lambda: all(bench.status_of(m.message_id) == M.SENT for m in msgs), limit=60)
    times = sorted(sent_at[m.message_id] for m in msgs)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    jitter = bench.cfg.queue.pacing_jitter
    assert all(g >= bench.cfg.queue.pacing_interval * (1 - jitter) - 1e-6 for g in gaps), gaps


def test_queue_held_while_offline_and_drains_in_order(bench: Bench) -> None:
    bench.net.inject("i1", "connect_fail", count=2)
    bench.create()
    msgs = [bench.send(f"m{i}") for i in range(3)]
    bench.run_until(lambda: all(bench.status_of(m.message_id) == M.SENT for m in msgs), limit=3600)
    assert bench.net.delivered_ids("i1") == [m.message_id for m in msgs]


def test_status_reads_never_connect(bench: Bench) -> None:
    """Invariant 2: snapshots and pings never start a connection."""
    inst = bench.create(desired="stopped")
    for _ in range(100):
        inst.snapshot()
        bench.command(GetState)
    bench.run(600)
    assert bench.stats().get("connects", 0) == 0
    assert inst.state == S.STOPPED


def test_one_live_session_under_start_restart_conflict(bench: Bench) -> None:
    """Invariant 1: start, restart and a conflict arriving together never make two sessions."""
    inst = bench.create()
    for _ in range(4):
        bench.run_until(lambda: online(bench), limit=24 * 3600)
        # All of these land in the mailbox before the actor handles any of them.
        bench.net.inject("i1", "conflict")
        for kind in (Start, Restart, Start, Restart):
            bench.inbox.append(kind())
        bench.settle()
        for _ in range(50):
            bench.run(10)
            assert len([s for s in bench.net.instance_ids(live_only=True) if s == "i1"]) <= 1
            session = inst.connection.driver
            assert session is None or inst.state in (S.CONNECTING, S.ONLINE, S.PAIRING)
    bench.run_until(lambda: online(bench), limit=24 * 3600)
    assert bench.stats()["conflicts_caused_by_ours"] == 0
    assert bench.stats()["conflicts_injected"] == 4


def test_logged_out_holds_queue_and_pairing_brings_it_back(bench: Bench) -> None:
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    bench.net.inject("i1", "logout")
    bench.run_until(lambda: inst.state == S.LOGGED_OUT, limit=1)
    msg = bench.send("held")
    bench.run(600)
    assert bench.status_of(msg.message_id) == M.QUEUED
    f = bench.command(Pair)
    bench.run_until(f.done, limit=60)
    assert "qr" in f.result()
    assert inst.state == S.PAIRING
    bench.net.complete_pairing("i1")
    bench.run_until(lambda: bench.status_of(msg.message_id) == M.SENT, limit=60)


def test_pair_refused_when_online(bench: Bench) -> None:
    bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    f = bench.command(Pair)
    with pytest.raises(InvalidState):
        f.result(0)


def test_pairing_deadline(bench: Bench) -> None:
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    bench.net.inject("i1", "logout")
    bench.run_until(lambda: inst.state == S.LOGGED_OUT, limit=1)
    bench.command(Pair)
    bench.run_until(lambda: inst.state == S.PAIRING, limit=60)
    bench.run(bench.cfg.connection.pairing_timeout + 1)
    assert inst.state == S.LOGGED_OUT
    assert inst.connection.driver is None


def test_ban_waits_for_expiry(bench: Bench) -> None:
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    bench.net.inject("i1", "ban", duration=600)
    bench.run_until(lambda: inst.state == S.BANNED, limit=1)
    connects = bench.stats()["connects"]
    bench.run(590)
    assert bench.stats()["connects"] == connects
    bench.run_until(lambda: online(bench), limit=600)


def test_cancel_queued_but_not_sending(bench: Bench) -> None:
    inst = bench.create(desired="stopped")
    msg = bench.send()
    assert bench.command(Cancel, message_id=msg.message_id).result(0) == "cancelled"
    assert bench.status_of(msg.message_id) == M.CANCELLED
    assert not inst.outbox.queue
    again = bench.command(Cancel, message_id=msg.message_id)
    with pytest.raises(InvalidState):
        again.result(0)


def test_expired_message_leaves_as_expired(bench: Bench) -> None:
    bench.create(desired="stopped")
    msg = bench.send()
    import time as _t

    past = dataclasses.replace(msg, message_id=msg.message_id + "X", expires_at=_t.time() - 1)
    stored, _ = bench.store.enqueue(past, max_queue=100).result(5)
    from waz_actors.actors.messages import Submit

    bench.instance.handle(Submit(stored))
    bench.command(Start)
    bench.run_until(lambda: bench.status_of(past.message_id) == M.EXPIRED, limit=60)
    bench.run_until(lambda: bench.status_of(msg.message_id) == M.SENT, limit=60)
    assert past.message_id not in bench.net.delivered_ids("i1")


def test_reset_closes_breaker_and_connects(bench: Bench) -> None:
    bench.net.inject("i1", "connect_fail", count=6)
    inst = bench.create()
    bench.run_until(lambda: inst.state == S.TRIPPED, limit=24 * 3600)
    assert bench.command(Reset).result(0) in (S.CONNECTING, S.BACKOFF)
    bench.run_until(lambda: online(bench), limit=120)


def test_a_staggered_probe_still_probes(bench: Bench) -> None:
    """Regression (chaos run): when the half-open probe had to wait for the daemon-wide connect
    gate, the timer found the instance `tripped` and never connected: it stayed tripped for
    good with its queue stranded. A probe that waited for its slot must still go."""
    bench.net.inject("i1", "connect_fail", count=6)
    inst = bench.create()
    bench.run_until(lambda: inst.state == S.TRIPPED, limit=24 * 3600)
    msg = bench.send("waits for the probe")
    probe_at = inst.connection.breaker.next_probe_at()
    assert probe_at is not None
    bench.run(probe_at - bench.clock.now() - 0.5)
    for _ in range(3000):  # the other instances of a restarting daemon: 3 s of slots
        bench.deps.gate.reserve(bench.clock.now())
    bench.run_until(lambda: online(bench), limit=60)
    bench.run_until(lambda: bench.status_of(msg.message_id) == M.SENT, limit=60)


def test_default_config_is_the_seed(tmp_path: Path) -> None:
    cfg = Config()
    assert cfg.connection.throttle == 60 and cfg.connection.throttle_after_attempts == 120
    assert cfg.connection.throttle_after_conflict == 180 and cfg.conflict.cooldown == 90
    assert cfg.breaker.failure_threshold == 5 and cfg.queue.max_retries == 3
    assert cfg.queue.retry_delay == 5 and cfg.queue.pacing_interval == 2
    assert cfg.queue.max_size == 100 and cfg.queue.processing_timeout == 30
    assert cfg.connection.timeout == 120 and cfg.connection.keepalive == 45
    assert cfg.daemon.health_sweep == 120


def test_processing_timeout_resends_with_the_same_id(bench: Bench) -> None:
    """A send with no answer within 30 s is an unknown outcome: the session is recycled and
    the message goes again with its own id (WhatsApp would drop a second copy)."""
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    bench.net.inject("i1", "latency", send=100.0)
    msg = bench.send()
    bench.run(bench.cfg.queue.processing_timeout + 0.1)
    assert inst.state == S.BACKOFF
    assert bench.status_of(msg.message_id) == M.QUEUED
    assert bench.store.get_message(msg.message_id).attempts == 0  # unknown is not a failure
    bench.net.inject("i1", "latency", send=0.2)
    bench.run_until(lambda: bench.status_of(msg.message_id) == M.SENT, limit=3600)
    assert bench.net.delivered_ids("i1") == [msg.message_id]


def test_processing_timeout_counts_from_each_send(bench: Bench) -> None:
    """One timer serves many sends: a send that hangs after a quick one still gets its full
    30 s, counted from its own start, not from the first send's."""
    inst = bench.create()
    bench.run_until(lambda: online(bench), limit=5)
    bench.net.inject("i1", "latency", send=20.0)
    first = bench.send("quick enough")
    bench.run_until(lambda: bench.status_of(first.message_id) == M.SENT, limit=25)
    bench.net.inject("i1", "latency", send=100.0)
    hung = bench.send("never answered")
    bench.run_until(lambda: bench.status_of(hung.message_id) == M.SENDING, limit=5)
    started = bench.clock.now()
    bench.run_until(lambda: inst.state != S.ONLINE, limit=60)
    waited = bench.clock.now() - started
    timeout = bench.cfg.queue.processing_timeout
    assert timeout - 0.5 <= waited <= timeout + 2.5, waited
    assert bench.status_of(hung.message_id) == M.QUEUED


def test_queue_full_refuses_and_keeps_what_was_accepted(tmp_path: Path) -> None:
    from waz_actors.errors import QueueFull

    b = Bench(tmp_path, quick_config(max_size=3))
    try:
        b.create(desired="stopped")
        kept = [b.send(f"m{i}") for i in range(3)]
        with pytest.raises(QueueFull):
            b.send("one too many")
        b.command(Start)
        b.run_until(lambda: all(b.status_of(m.message_id) == M.SENT for m in kept), limit=60)
        assert sorted(b.net.delivered_ids("i1")) == sorted(m.message_id for m in kept)
    finally:
        b.close()


def test_a_driver_that_raises_is_a_failed_attempt(tmp_path: Path) -> None:
    b = Bench(tmp_path)

    def broken(ctx):
        raise OSError("cannot start driver host")

    b.deps.drivers["sim"] = broken
    try:
        inst = b.create()
        assert inst.state == S.BACKOFF
        assert any(t == "daemon.alarm" and x["kind"] == "driver_error" for t, x in b.events)
        b.run_until(lambda: inst.state == S.TRIPPED, limit=24 * 3600)
    finally:
        b.close()
