"""Fixtures for the fake network: a compressed real clock, its scheduler, recorders."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.base import DriverEvent
from waz_actors.drivers.sim.network import SimNetwork

SCALE = 0.001  # one daemon second lasts a millisecond


class Recorder:
    """A sink that keeps events and lets the test wait for a condition on them."""

    def __init__(self) -> None:
        self.events: list[DriverEvent] = []
        self._cv = threading.Condition()

    def __call__(self, event: DriverEvent) -> None:
        with self._cv:
            self.events.append(event)
            self._cv.notify_all()

    def wait_for(
        self, predicate: Callable[[list[DriverEvent]], bool], timeout: float = 5.0
    ) -> list[DriverEvent]:
        with self._cv:
            ok = self._cv.wait_for(lambda: predicate(self.events), timeout=timeout)
            assert ok, f"condition not met; events: {self.events}"
            return list(self.events)

    def wait_count(self, kind: type, n: int = 1, timeout: float = 5.0) -> list[DriverEvent]:
        self.wait_for(lambda evs: sum(isinstance(e, kind) for e in evs) >= n, timeout)
        return self.of(kind)

    def of(self, kind: type) -> list[DriverEvent]:
        with self._cv:
            return [e for e in self.events if isinstance(e, kind)]

    def snapshot(self) -> list[DriverEvent]:
        with self._cv:
            return list(self.events)


def settle(scheduler: Scheduler, delay: float) -> None:
    """Wait until every timer due within `delay` daemon seconds from now has fired.

    The scheduler runs timers in due order on one thread, so a marker timer set `delay` ahead
    fires after them: a condition to wait on, not a guess of how long things take.
    """
    done = threading.Event()
    scheduler.call_later(delay, done.set)
    assert done.wait(10), "scheduler did not reach the marker"


@pytest.fixture
def clock() -> RealClock:
    return RealClock(time_scale=SCALE)


@pytest.fixture
def scheduler(clock: RealClock) -> Iterator[Scheduler]:
    sched = Scheduler(clock)
    sched.start()
    yield sched
    sched.stop()


@pytest.fixture
def net(scheduler: Scheduler, clock: RealClock) -> SimNetwork:
    import random

    return SimNetwork(scheduler, clock, rand=random.Random(7))
