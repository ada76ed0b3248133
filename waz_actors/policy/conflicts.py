"""History of 440 conflicts of one instance, and the cooldown each new conflict earns.

The cooldown is `cooldown * multiplier**(n-1)` for the n-th conflict inside the sliding window,
capped at `cooldown_max`: 90 s, 180 s, 360 s, ... with the seed values. Nothing resets the
history but time: a connection that stays online briefly between conflicts must not make the
next conflict look like the first one (invariant 3 of docs/design.md). There is no clear()
on purpose.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from waz_actors.config import ConflictConfig
from waz_actors.policy import _checks

# Memory bound per instance; the cooldown is long capped before this many conflicts.
MAX_CONFLICTS = 1024


def conflict_cooldown(count: int, *, cooldown: float, multiplier: float, maximum: float) -> float:
    """Cooldown for the `count`-th conflict in the window (count >= 1)."""
    _checks.count("count", count, minimum=1)
    try:
        return min(maximum, cooldown * multiplier ** (count - 1))
    except OverflowError:
        return maximum


class ConflictHistory:
    def __init__(
        self,
        *,
        window: float = 3600.0,
        cooldown: float = 90.0,
        multiplier: float = 2.0,
        cooldown_max: float = 1800.0,
        trip_threshold: int = 5,
        times: Iterable[float] = (),
    ) -> None:
        self.window = _checks.positive("window", window)
        self.cooldown = _checks.non_negative("cooldown", cooldown)
        self.multiplier = _checks.finite("multiplier", multiplier)
        if self.multiplier < 1.0:
            raise ValueError(f"multiplier must be at least 1, got {multiplier!r}")
        self.cooldown_max = _checks.non_negative("cooldown_max", cooldown_max)
        if self.cooldown_max < self.cooldown:
            raise ValueError(
                f"cooldown_max ({cooldown_max!r}) must not be below cooldown ({cooldown!r})"
            )
        self.trip_threshold = _checks.count("trip_threshold", trip_threshold, minimum=1)
        if isinstance(times, str | bytes):
            raise ValueError("times must be an iterable of numbers")
        loaded = sorted(_checks.finite("times[]", t) for t in times)
        self._times: list[float] = loaded
        if self._times:
            self._prune()

    @classmethod
    def from_config(cls, cfg: ConflictConfig, times: Iterable[float] = ()) -> ConflictHistory:
        return cls(
            window=cfg.window,
            cooldown=cfg.cooldown,
            multiplier=cfg.cooldown_multiplier,
            cooldown_max=cfg.cooldown_max,
            trip_threshold=cfg.trip_threshold,
            times=times,
        )

    def record(self, now: float) -> float:
        """Record a conflict at `now`; return the cooldown (seconds) to apply from now."""
        now = _checks.finite("now", now)
        bisect.insort(self._times, now)
        self._prune()
        return self.cooldown_for(self.count(now))

    def cooldown_for(self, count: int) -> float:
        return conflict_cooldown(
            max(1, count),
            cooldown=self.cooldown,
            multiplier=self.multiplier,
            maximum=self.cooldown_max,
        )

    def count(self, now: float) -> int:
        """Conflicts inside the window (now - window, now]; later ones count too (clock skew)."""
        now = _checks.finite("now", now)
        return len(self._times) - bisect.bisect_right(self._times, now - self.window)

    def should_trip(self, now: float) -> bool:
        return self.count(now) >= self.trip_threshold

    def last(self) -> float | None:
        return self._times[-1] if self._times else None

    def times(self) -> tuple[float, ...]:
        """Every kept conflict time, oldest first (for persisting the history)."""
        return tuple(self._times)

    def snapshot(self, now: float) -> dict[str, Any]:
        count = self.count(now)
        return {
            "count": count,
            "window": self.window,
            "last": self.last(),
            "next_cooldown": self.cooldown_for(count + 1),
            "should_trip": count >= self.trip_threshold,
        }

    def _prune(self) -> None:
        # Relative to the newest conflict: once time moved past the window they never count again.
        cut = bisect.bisect_right(self._times, self._times[-1] - self.window)
        cut = max(cut, len(self._times) - MAX_CONFLICTS)
        if cut > 0:
            del self._times[:cut]
