"""Property: whatever the daemon and the faults do, one instance never has two live sessions,
the daemon's view agrees with the network's, and no message id is delivered twice."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.base import Banned, Conflict, Connected, Disconnected, LoggedOut
from waz_actors.drivers.base import OutgoingMessage as Msg
from waz_actors.drivers.sim.model import SimSession
from waz_actors.drivers.sim.network import SimNetwork

from .conftest import Recorder, settle

FINAL = (Conflict, Disconnected, LoggedOut, Banned)
IDS = ("A", "B")

ops = st.lists(
    st.one_of(
        st.tuples(st.just("open"), st.sampled_from(IDS)),
        st.tuples(st.just("close"), st.integers(0, 20)),
        st.tuples(st.just("send"), st.integers(0, 20), st.integers(0, 5)),
        st.tuples(st.just("settle"), st.floats(0.1, 2.0)),
        st.tuples(
            st.just("fault"),
            st.sampled_from(IDS),
            st.sampled_from(["conflict", "disconnect", "connect_fail", "send_fail", "hang"]),
        ),
    ),
    max_size=25,
)


@pytest.fixture(scope="module")
def sched() -> Iterator[tuple[Scheduler, RealClock]]:
    clock = RealClock(time_scale=0.001)
    scheduler = Scheduler(clock)
    scheduler.start()
    yield scheduler, clock
    scheduler.stop()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops, seed=st.integers(0, 1000))
def test_one_live_session_and_exactly_once(
    sched: tuple[Scheduler, RealClock], steps: list[tuple], seed: int
) -> None:
    scheduler, clock = sched
    net = SimNetwork(
        scheduler, clock, connect_latency=0.5, send_latency=0.3, rand=random.Random(seed)
    )
    sessions: list[tuple[SimSession, Recorder]] = []
    closed_by_us: set[int] = set()
    for step in steps:
        kind = step[0]
        if kind == "open":
            rec = Recorder()
            sessions.append((net.open_session(step[1], rec), rec))
        elif kind == "close" and sessions:
            session = sessions[step[1] % len(sessions)][0]
            session.close()
            closed_by_us.add(session.session_id)
        elif kind == "send" and sessions:
            sessions[step[1] % len(sessions)][0].send(Msg(f"M{step[2]}", "x@s.whatsapp.net"))
        elif kind == "settle":
            settle(scheduler, step[1])
        elif kind == "fault":
            try:
                net.inject(step[1], step[2])
            except ValueError:
                pass  # no live session to hit: refused, nothing changed
        for iid in IDS:
            assert net.session_states(iid).count("live") <= 1
    settle(scheduler, 2.0)
    for iid in IDS:
        believed = [
            s
            for s, rec in sessions
            if s.instance_id == iid
            and s.session_id not in closed_by_us
            and rec.of(Connected)
            and not any(isinstance(e, FINAL) for e in rec.snapshot())
        ]
        assert len(believed) == net.session_states(iid).count("live") <= 1
        assert all(s.live for s in believed)
    log = net.delivered_log()
    assert len({e["message_id"] for e in log}) == len(log)
    for s, _ in sessions:
        s.close()
