"""Time: a Clock that policies read, and one Scheduler thread that fires timers.

Every duration in the config is in "daemon seconds". `time_scale` says how many real seconds one
daemon second lasts (1.0 in production, 0.01 in tests), so policies never see the scale: they
read `clock.now()` in daemon seconds and the scheduler converts delays to real time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic daemon seconds."""
        ...

    def wall(self) -> float:
        """Unix time in real seconds (for timestamps shown to people and clients)."""
        ...


class RealClock:
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._origin) / self.time_scale

    def wall(self) -> float:
        return time.time()

    def real_delay(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1000.0, wall_start: float | None = None) -> None:
        self._t = start
        self._wall0 = (time.time() if wall_start is None else wall_start) - start
        self.time_scale = 1.0

    def now(self) -> float:
        return self._t

    def wall(self) -> float:
        return self._wall0 + self._t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def real_delay(self, seconds: float) -> float:
        return max(0.0, seconds)


@dataclass(order=True)
class _Entry:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class TimerHandle:
    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def cancel(self) -> None:
        self._entry.cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._entry.cancelled


class Scheduler:
    """One thread for all timers. Callbacks must be quick (typically an actor `tell`)."""

    def __init__(self, clock: RealClock | FakeClock) -> None:
        self._clock = clock
        self._heap: list[_Entry] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="waz-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` after `delay` daemon seconds."""
        due = time.monotonic() + self._clock.real_delay(delay)
        entry = _Entry(due, next(self._seq), callback)
        with self._cv:
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cv.notify()
        return TimerHandle(entry)

    def pending(self) -> int:
        with self._cv:
            return sum(1 for e in self._heap if not e.cancelled)

    def _run(self) -> None:
        from loguru import logger

        while True:
            with self._cv:
                while not self._stopped:
                    while self._heap and self._heap[0].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cv.wait()
                        continue
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        break
                    self._cv.wait(wait)
                if self._stopped:
                    return
                entry = heapq.heappop(self._heap)
            try:
                entry.callback()
            except Exception:
                logger.exception("timer callback failed")


class ManualScheduler:
    """A Scheduler for a FakeClock: timers fire only when a test calls `advance`.

    Same `call_later` contract as `Scheduler`, so plain classes (Instance, SimNetwork) run
    deterministically in tests, with no thread and no real time.
    """

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        entry = _Entry(self._clock.now() + max(0.0, delay), next(self._seq), callback)
        with self._lock:
            heapq.heappush(self._heap, entry)
        return TimerHandle(entry)

    def pending(self) -> int:
        with self._lock:
            return sum(1 for e in self._heap if not e.cancelled)

    def next_due(self) -> float | None:
        with self._lock:
            live = [e.due for e in self._heap if not e.cancelled]
        return min(live) if live else None

    def run_due(self) -> int:
        """Fire every timer due at the current time; returns how many fired."""
        fired = 0
        while True:
            with self._lock:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap or self._heap[0].due > self._clock.now():
                    return fired
                entry = heapq.heappop(self._heap)
            entry.callback()
            fired += 1

    def advance(self, seconds: float) -> int:
        """Move the clock forward, firing timers in order at their due times."""
        target = self._clock.now() + seconds
        fired = 0
        while True:
            due = self.next_due()
            if due is None or due > target:
                break
            if due > self._clock.now():
                self._clock.advance(due - self._clock.now())
            fired += self.run_due()
        if target > self._clock.now():
            self._clock.advance(target - self._clock.now())
        fired += self.run_due()
        return fired
