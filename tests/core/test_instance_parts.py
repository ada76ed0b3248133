"""The Instance's parts and its typed messages: timers, command dispatch, and the Fleet's
translation of its public calls into command messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.core.harness import Bench
from waz_actors.actors.board import StatusBoard
from waz_actors.actors.fleet import Fleet
from waz_actors.actors.instance.timers import Timers
from waz_actors.actors.messages import (
    Cancel,
    Crash,
    GetState,
    Logout,
    Pair,
    Purge,
    Reset,
    Restart,
    Retry,
    Start,
    Stop,
    TimerFired,
)
from waz_actors.actors.supervisor import Children, SweepStatus
from waz_actors.clock import FakeClock, ManualScheduler
from waz_actors.config import Config
from waz_actors.errors import InvalidState
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M


@pytest.fixture
def bench(tmp_path: Path):
    b = Bench(tmp_path)
    yield b
    b.close()


def test_a_replaced_or_cancelled_timer_is_stale() -> None:
    clock = FakeClock()
    sched = ManualScheduler(clock)
    posted: list[object] = []
    timers = Timers(sched, posted.append)
    timers.schedule("pump", 1.0)
    timers.schedule("pump", 5.0)  # replaces the first
    timers.schedule("probe", 2.0)
    timers.cancel("probe")
    sched.advance(10.0)
    assert len(posted) == 1  # the replaced and the cancelled never fire
    fired = posted[0]
    assert isinstance(fired, TimerFired) and fired.name == "pump"
    assert timers.fired(fired)
    assert not timers.pending("pump")
    assert not timers.fired(fired)  # the same message twice: stale
    assert not timers.fired(TimerFired("pump", 0))


def test_the_connect_timer_carries_its_payload() -> None:
    clock = FakeClock()
    timers = Timers(ManualScheduler(clock), lambda m: None)
    timers.schedule("connect", 1.0, payload=("staggered", True))
    assert timers.take_payload("connect", ("retry", False)) == ("staggered", True)
    assert timers.take_payload("connect", ("retry", False)) == ("retry", False)


def test_commands_are_dispatched_by_type(bench: Bench) -> None:
    inst = bench.create(desired="stopped")
    assert bench.command(GetState).result(0) == "stopped"
    assert bench.command(Start).result(0) in (S.CONNECTING, S.BACKOFF)
    bench.run_until(lambda: inst.state == S.ONLINE, limit=60)
    assert bench.command(Restart).result(0) in (S.CONNECTING, S.BACKOFF)
    assert bench.command(Stop).result(0) == "stopped"
    assert bench.command(Reset).result(0) == "stopped"  # wanted stopped: reset connects nothing
    assert bench.command(Logout).result(0) == "logged_out"


def test_purge_and_retry(tmp_path: Path) -> None:
    b = Bench(tmp_path)
    try:
        b.create(desired="stopped")
        kept, purged = b.send("kept"), b.send("purged")
        assert b.command(Cancel, message_id=kept.message_id).result(0) == "cancelled"
        assert b.command(Purge, status="queued").result(0) == 1
        assert b.status_of(purged.message_id) == M.CANCELLED
        assert b.command(Retry, message_ids=None).result(0) == []  # nothing failed
    finally:
        b.close()


def test_a_refused_command_answers_its_reply(bench: Bench) -> None:
    inst = bench.create()
    bench.run_until(lambda: inst.state == S.ONLINE, limit=60)
    with pytest.raises(InvalidState, match="online"):
        bench.command(Pair, phone="6281234567890").result(0)


def test_crash_and_unknown_messages_raise(bench: Bench) -> None:
    inst = bench.create(desired="stopped")
    with pytest.raises(RuntimeError, match="crash requested"):
        inst.handle(Crash())
    with pytest.raises(TypeError, match="unexpected message"):
        inst.handle(object())


class _Ref:
    """An actor ref that answers every command with a fixed value, recording what it got."""

    def __init__(self) -> None:
        self.told: list[object] = []

    def tell(self, msg: Any) -> None:
        self.told.append(msg)
        if msg.reply is not None:
            msg.reply.set_result("ok")


def test_the_fleet_sends_typed_commands() -> None:
    children = Children()
    ref = _Ref()
    children.set("i1", ref)  # type: ignore[arg-type]
    fleet = Fleet(
        Config(),
        FakeClock(),
        store=None,  # type: ignore[arg-type]
        board=StatusBoard(),
        children=children,
        supervisor=None,  # type: ignore[arg-type]
        sweep=SweepStatus(),
    )
    fleet.start("i1")
    fleet.stop("i1")
    fleet.restart("i1")
    fleet.logout("i1")
    fleet.reset("i1")
    fleet.pair("i1", "6281234567890")
    fleet.cancel("i1", "m1")
    fleet.retry("i1", ["m1", "m2"])
    fleet.purge("i1", "sending")
    fleet.crash("i1")
    kinds = [type(m) for m in ref.told]
    assert kinds == [Start, Stop, Restart, Logout, Reset, Pair, Cancel, Retry, Purge, Crash]
    pair, cancel, retry, purge = ref.told[5], ref.told[6], ref.told[7], ref.told[8]
    assert isinstance(pair, Pair) and pair.phone == "6281234567890"
    assert isinstance(cancel, Cancel) and cancel.message_id == "m1"
    assert isinstance(retry, Retry) and retry.message_ids == ("m1", "m2")
    assert isinstance(purge, Purge) and purge.status == "sending"
