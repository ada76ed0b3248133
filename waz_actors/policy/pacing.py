"""Send pacing for one instance: a token bucket refilled at most once per `interval`.

Decision: jitter only ever LENGTHENS a refill interval, to interval * (1 + U(0, jitter)). The
configured interval is a hard minimum (the seed: at most one message per 2 s), so over any span
of W seconds at most `burst + W / interval` messages go out, while the jitter keeps the rhythm
from looking machine-made. The long-run rate lies between 1 / (interval * (1 + jitter)) and
1 / interval.

Refills are scheduled from the previous refill time, not from "now", so an idle instance catches
up to a full bucket but never beyond it; while the bucket is full the refill timer is stopped.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from waz_actors.config import QueueConfig
from waz_actors.policy import _checks


class Pacer:
    def __init__(
        self,
        *,
        interval: float = 2.0,
        burst: int = 1,
        jitter: float = 0.25,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.interval = _checks.non_negative("interval", interval)  # 0 = unlimited
        self.burst = _checks.count("burst", burst, minimum=1)
        self.jitter = _checks.non_negative("jitter", jitter)
        if not callable(rand):
            raise ValueError("rand must be callable")
        self._rand = rand
        self._tokens = self.burst
        self._next_refill: float | None = None  # None while the bucket is full
        self._last_now = float("-inf")

    @classmethod
    def from_config(cls, cfg: QueueConfig, rand: Callable[[], float] = random.random) -> Pacer:
        return cls(
            interval=cfg.pacing_interval,
            burst=cfg.pacing_burst,
            jitter=cfg.pacing_jitter,
            rand=rand,
        )

    @property
    def unlimited(self) -> bool:
        return self.interval == 0

    def delay(self, now: float) -> float:
        """Seconds until the next send may go (0: now)."""
        if self.unlimited:
            _checks.finite("now", now)
            return 0.0
        now = self._advance(now)
        if self._tokens > 0:
            return 0.0
        assert self._next_refill is not None  # empty bucket always has a refill scheduled
        return max(0.0, self._next_refill - now)

    def take(self, now: float) -> bool:
        """Consume a token if one is available; True means the caller may send now."""
        if self.unlimited:
            _checks.finite("now", now)
            return True
        now = self._advance(now)
        if self._tokens == 0:
            return False
        self._tokens -= 1
        if self._next_refill is None:
            self._next_refill = now + self._draw()
        return True

    def tokens(self, now: float) -> int:
        if self.unlimited:
            return self.burst
        self._advance(now)
        return self._tokens

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "burst": self.burst,
            "tokens": self.tokens(now),
            "delay": self.delay(now),
        }

    def _draw(self) -> float:
        return self.interval * (1.0 + self.jitter * _checks.unit(self._rand()))

    def _advance(self, now: float) -> float:
        now = _checks.finite("now", now)
        # A clock read that went backwards is treated as "no time passed": it must never
        # let a send out earlier than the schedule allows.
        now = max(now, self._last_now)
        self._last_now = now
        while self._next_refill is not None and self._next_refill <= now + _checks.TIME_EPSILON:
            self._tokens += 1
            if self._tokens >= self.burst:
                self._next_refill = None
            else:
                self._next_refill += self._draw()
        return now
