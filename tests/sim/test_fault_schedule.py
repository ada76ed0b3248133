"""FaultSchedule: Poisson faults at daemon-time rates, and its input checks."""

from __future__ import annotations

import random

import pytest

from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.base import Conflict, Connected
from waz_actors.drivers.sim.faults import FaultSchedule, parse_fault_rates
from waz_actors.drivers.sim.network import SimNetwork

from .conftest import Recorder, settle


def test_rates_are_roughly_right_over_compressed_time() -> None:
    clock = RealClock(time_scale=0.0005)  # one daemon hour lasts 1.8 s
    scheduler = Scheduler(clock)
    scheduler.start()
    try:
        net = SimNetwork(scheduler, clock, rand=random.Random(1))
        rec = Recorder()
        net.open_session("A", rec)
        rec.wait_count(Connected)
        schedule = FaultSchedule(
            {"send_fail": 600, "connect_fail": 300, "hang": 0}, random.Random(42)
        )
        start = clock.now()
        schedule.start(net)
        settle(scheduler, 3600)
        schedule.stop()
        hours = (clock.now() - start) / 3600
        fired = dict(schedule.fired)
        settle(scheduler, 50)
        assert schedule.fired == fired  # stop() stops
    finally:
        scheduler.stop()
    assert 0.99 <= hours < 1.5
    assert 450 * hours <= fired["send_fail"] <= 750 * hours
    assert 210 * hours <= fired["connect_fail"] <= 390 * hours
    assert "hang" not in fired  # a zero rate is no fault at all
    assert net.stats()["faults"] == fired


def test_faults_needing_a_live_session_skip_when_none(
    scheduler: Scheduler, clock: RealClock
) -> None:
    net = SimNetwork(scheduler, clock)
    schedule = FaultSchedule({"conflict": 36000}, random.Random(5))
    schedule.start(net)
    settle(scheduler, 10)
    schedule.stop()
    assert schedule.fired["conflict"] == 0
    assert schedule.skipped["conflict"] > 0
    assert net.stats()["faults"] == {}


def test_scheduled_conflicts_hit_live_sessions_as_injected(
    scheduler: Scheduler, clock: RealClock
) -> None:
    net = SimNetwork(scheduler, clock, rand=random.Random(2))
    rec = Recorder()
    net.open_session("A", rec)
    rec.wait_count(Connected)
    schedule = FaultSchedule({"conflict": 3600}, random.Random(9))
    schedule.start(net)
    try:
        rec.wait_for(lambda evs: len(evs) >= 2)
    finally:
        schedule.stop()
    st = net.stats()["instances"]["A"]
    assert st["conflicts_injected"] == 1
    assert st["conflicts_caused_by_ours"] == 0
    with pytest.raises(RuntimeError):
        schedule.start(net)
        schedule.start(net)
    schedule.stop()


def test_faults_do_not_pile_onto_the_few_live_sessions(
    scheduler: Scheduler, clock: RealClock
) -> None:
    """Rates are per instance: with one of ten instances live (it reconnects at once after
    each conflict), it gets about a tenth of the conflicts, and the draws that hit one of the
    nine without a session are skipped. Drawing among live sessions only would give it all."""
    net = SimNetwork(scheduler, clock, connect_latency=0.0, rand=random.Random(3))
    for k in range(1, 10):
        net.open_session(f"i{k}", Recorder()).close()

    class Reconnects(Recorder):
        def __call__(self, event: object) -> None:
            super().__call__(event)  # type: ignore[arg-type]
            if isinstance(event, Conflict):
                net.post(lambda: net.open_session("i0", self))

    live = Reconnects()
    net.open_session("i0", live)
    live.wait_count(Connected)
    schedule = FaultSchedule({"conflict": 36000}, random.Random(7))
    schedule.start(net)
    try:
        settle(scheduler, 4)  # about 40 draws
    finally:
        schedule.stop()
    fired, skipped = schedule.fired["conflict"], schedule.skipped["conflict"]
    assert fired >= 1 and skipped >= 3 * fired, (fired, skipped)


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'meteor'"):
        FaultSchedule({"meteor": 1})
    with pytest.raises(ValueError, match="must be >= 0"):
        FaultSchedule({"conflict": -1})
    with pytest.raises(ValueError, match="latency fault schedule needs params"):
        FaultSchedule({"latency": 1})
    with pytest.raises(ValueError, match="count must be"):
        FaultSchedule({"send_fail": 1}, params={"send_fail": {"count": 0}})


def test_parse_fault_rates() -> None:
    assert parse_fault_rates("conflict=2, disconnect=4.5,") == {"conflict": 2.0, "disconnect": 4.5}
    assert parse_fault_rates("") == {}
    for bad in ("conflict", "boom=1", "ban=x", "ban=-2"):
        with pytest.raises(ValueError, match=r"bad fault rate|must be"):
            parse_fault_rates(bad)


class _Owner:
    """A session owner (a daemon connection of the sim server) that is alive until killed."""

    def __init__(self) -> None:
        self.dead = False

    def alive(self) -> bool:
        return not self.dead


def test_faults_skip_a_dead_owners_lingering_session(
    scheduler: Scheduler, clock: RealClock
) -> None:
    """A killed daemon's session lingers until the restarted daemon replaces it (counted as
    `stale_replaced`): the schedule must not close it first, at random, with a fault."""
    net = SimNetwork(scheduler, clock, rand=random.Random(2))
    owner = _Owner()
    rec = Recorder()
    net.open_session("A", rec, owner=owner)
    rec.wait_count(Connected)
    assert net.instance_ids(owned_only=True) == ["A"]
    owner.dead = True
    assert net.instance_ids(live_only=True) == ["A"]
    assert net.instance_ids(owned_only=True) == []
    schedule = FaultSchedule({"conflict": 36000, "disconnect": 36000}, random.Random(5))
    schedule.start(net)
    settle(scheduler, 10)
    schedule.stop()
    assert sum(schedule.fired.values()) == 0
    assert schedule.skipped["conflict"] > 0 and schedule.skipped["disconnect"] > 0
    assert net.session_states("A") == ["live"]
    # The new daemon's session replaces it: stale, not a conflict of ours.
    new = Recorder()
    net.open_session("A", new, owner=_Owner())
    new.wait_count(Connected)
    st = net.stats()["instances"]["A"]
    assert (st["stale_replaced"], st["conflicts_caused_by_ours"]) == (1, 0)
