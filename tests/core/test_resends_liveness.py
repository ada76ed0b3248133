"""Honest resends (a driver whose network does not drop a second copy) and the liveness check
("connected but dead"), on the deterministic bench with the in-process sim."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.core.harness import Bench, quick_config
from tests.store.store_helpers import fill_disk
from waz_actors.config import Config
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M


def online(b: Bench) -> bool:
    return b.instance is not None and b.instance.state == S.ONLINE


def no_dedup_bench(tmp: Path, cfg: Config | None = None) -> Bench:
    b = Bench(tmp, cfg)
    b.net.dedup_resends = False  # like whatsmeow: a resend is a second message
    b.create()
    b.run_until(lambda: online(b), limit=5)
    return b


def status_events(b: Bench, mid: str) -> list[dict]:
    return [e for t, e in b.events if t.endswith(".status") and e["message_id"] == mid]


def test_resend_after_timeout_is_marked_possible_duplicate(tmp_path: Path) -> None:
    """The send left (the phone has it) but its answer never came: the processing timeout
    resends it, the network delivers it again, and the message says so."""
    b = no_dedup_bench(tmp_path)
    try:
        b.net.inject("i1", "blackhole", deliver=True)
        msg = b.send()
        b.run(b.cfg.queue.processing_timeout + 0.1)
        assert b.status_of(msg.message_id) == M.QUEUED
        b.flush()
        assert b.store.get_message(msg.message_id).possible_duplicate is False
        b.run_until(lambda: b.status_of(msg.message_id) == M.SENT, limit=3600)
        b.flush()
        rec = b.store.get_message(msg.message_id)
        assert rec.possible_duplicate is True and rec.outcome_unknown is False
        assert b.net.delivered_ids("i1") == [msg.message_id, msg.message_id]
        evs = status_events(b, msg.message_id)
        assert evs[-1]["status"] == "sent" and evs[-1]["possible_duplicate"] is True
        assert any("possible duplicate" in e["reason"] for e in evs)
    finally:
        b.close()


def test_resend_unknown_never_ends_in_unknown(tmp_path: Path) -> None:
    b = no_dedup_bench(tmp_path, quick_config(resend_unknown="never"))
    try:
        b.net.inject("i1", "blackhole", deliver=True)
        msg = b.send()
        later = b.send("the next one still goes")
        b.run_until(lambda: b.status_of(msg.message_id) == M.UNKNOWN, limit=3600)
        b.run_until(lambda: b.status_of(later.message_id) == M.SENT, limit=3600)
        assert b.net.delivered_ids("i1") == [msg.message_id, later.message_id]  # not resent
        rec = b.store.get_message(msg.message_id)
        assert rec.possible_duplicate is False and rec.attempts == 0
        assert M.UNKNOWN.final
        assert status_events(b, msg.message_id)[-1]["status"] == "unknown"
    finally:
        b.close()


def test_a_deduplicating_network_resends_without_the_mark(tmp_path: Path) -> None:
    b = Bench(tmp_path)  # the sim's default: a resend of a delivered id is dropped
    try:
        b.create()
        b.run_until(lambda: online(b), limit=5)
        b.net.inject("i1", "blackhole", deliver=True)
        msg = b.send()
        b.run_until(lambda: b.status_of(msg.message_id) == M.SENT, limit=3600)
        b.flush()
        assert b.store.get_message(msg.message_id).possible_duplicate is False
        assert b.net.delivered_ids("i1") == [msg.message_id]
    finally:
        b.close()


def test_restart_mid_send_counts_as_unknown_outcome(tmp_path: Path) -> None:
    """The daemon stopped with a message `sending`: recovery keeps that the outcome is unknown,
    so on a non-deduplicating driver the resend is marked."""
    b = no_dedup_bench(tmp_path)
    try:
        b.net.inject("i1", "latency", send=1000.0)
        msg = b.send()
        b.run_until(lambda: b.status_of(msg.message_id) == M.SENDING, limit=5)
        assert b.store.recover_sending() == 1  # what a restart does before the instances load
        rec = b.store.get_message(msg.message_id)
        assert rec.status == M.QUEUED and rec.outcome_unknown is True
    finally:
        b.close()


def test_a_possible_duplicate_waits_for_its_mark_to_be_durable(tmp_path: Path) -> None:
    """Issue 11's full disk meets issue 12's honest resends: a resend after an unknown outcome
    on a network that does not drop it goes only once its `sending`, carrying
    possible_duplicate, is on the disk; while the disk is full it does not go at all."""
    b = no_dedup_bench(tmp_path)
    try:
        disk = fill_disk(b.store)
        b.net.inject("i1", "blackhole", deliver=True)  # it reaches the phone, no answer comes
        msg = b.send()
        b.run(b.cfg.queue.processing_timeout + 0.1)
        assert b.status_of(msg.message_id) == M.QUEUED  # outcome unknown, durably
        assert b.store.get_message(msg.message_id).outcome_unknown is True

        disk.full = True
        b.run(300)  # the session comes back; the resend's `sending` cannot be written
        assert disk.refused > 0
        assert [t for t, e in b.events if t == "daemon.alarm"] == ["daemon.alarm"]
        assert b.net.delivered_ids("i1") == [msg.message_id]  # not resent
        assert not any(e.get("possible_duplicate") for e in status_events(b, msg.message_id))
        disk.full = False
        rec = b.store.get_message(msg.message_id)
        assert rec.status == M.QUEUED and rec.possible_duplicate is False

        b.net.inject("i1", "latency", send=5.0)
        b.run_until(lambda: b.instance is not None and b.instance.outbox.handed_over, limit=120)
        # The driver has it and it has not arrived yet: the mark is already on the disk.
        assert b.net.delivered_ids("i1") == [msg.message_id]
        rec = b.store.get_message(msg.message_id)
        assert rec.status == M.SENDING and rec.possible_duplicate is True
        sending = status_events(b, msg.message_id)[-1]
        assert sending["status"] == "sending" and sending["possible_duplicate"] is True

        b.run_until(lambda: b.status_of(msg.message_id) == M.SENT, limit=3600)
        assert b.net.delivered_ids("i1") == [msg.message_id, msg.message_id]
        rec = b.store.get_message(msg.message_id)
        assert rec.possible_duplicate is True and rec.outcome_unknown is False
    finally:
        b.close()


def test_no_sending_is_written_ahead_on_a_network_that_would_double_it(tmp_path: Path) -> None:
    """Pacing off, the next message's `sending` is written ahead only where a resend is
    harmless: on this network a restart would take that never-sent message for a possible
    duplicate (or, with resend_unknown = never, end it `unknown`)."""
    b = no_dedup_bench(tmp_path, quick_config(pacing_interval=0.0))
    try:
        b.net.inject("i1", "latency", send=10.0)
        first, second = b.send("a"), b.send("b")
        assert b.status_of(first.message_id) == M.SENDING
        assert b.status_of(second.message_id) == M.QUEUED
        assert b.store.recover_sending() == 1  # a restart now: only the first is unknown
        assert b.store.get_message(second.message_id).outcome_unknown is False
    finally:
        b.close()


# -- liveness ---------------------------------------------------------------------------------


def test_silent_session_with_a_send_pending_is_recycled(tmp_path: Path) -> None:
    cfg = quick_config(processing_timeout=100000.0)  # only the liveness check can notice
    b = Bench(tmp_path, cfg)
    try:
        inst = b.create()
        b.run_until(lambda: online(b), limit=5)
        b.net.inject("i1", "blackhole")  # the next send vanishes; the session stays "up"
        msg = b.send()
        window = cfg.connection.keepalive * 3
        started = b.clock.now()
        b.run_until(lambda: inst.state != S.ONLINE, limit=window + 10)
        assert window - 1 <= b.clock.now() - started <= window + 1
        assert inst.connection.liveness.recycles == 1
        assert inst.snapshot().recycles == 1
        state = [e for t, e in b.events if t.endswith(".state")][-1]
        assert state["previous"] == "online" and state["reason"].startswith("recycled: no progress")
        b.run_until(lambda: b.status_of(msg.message_id) == M.SENT, limit=3600)
        assert b.net.delivered_ids("i1") == [msg.message_id]
        assert b.stats()["connects"] == 2
    finally:
        b.close()


def test_idle_session_is_never_judged(tmp_path: Path) -> None:
    b = Bench(tmp_path)
    try:
        inst = b.create()
        b.run_until(lambda: online(b), limit=5)
        b.run(10 * b.cfg.connection.keepalive * 3)
        assert inst.state == S.ONLINE and inst.connection.liveness.recycles == 0
        assert b.stats()["connects"] == 1
    finally:
        b.close()


def test_recycle_waits_for_the_throttle(tmp_path: Path) -> None:
    """A short keepalive never makes a tight reconnect: the next attempt waits for the throttle."""
    cfg = quick_config(processing_timeout=100000.0)
    cfg = dataclasses.replace(cfg, connection=dataclasses.replace(cfg.connection, keepalive=1.0))
    b = Bench(tmp_path, cfg)
    try:
        inst = b.create()
        b.run_until(lambda: online(b), limit=5)
        b.net.inject("i1", "blackhole")
        b.send()
        b.run_until(lambda: inst.state != S.ONLINE, limit=10)
        assert inst.state == S.BACKOFF
        gap = inst.connection.next_attempt - b.clock.now()
        assert gap >= cfg.connection.throttle - 5, gap
    finally:
        b.close()
