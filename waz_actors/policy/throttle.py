"""Minimum gap between connection attempts of one instance (the seed's "dynamic throttling").

The gap is 60 s; 120 s once more than 2 attempts fell inside the window; 180 s when the latest
event in the window is a 440 conflict. After a conflict the 180 s count from the conflict itself
(it is later than the attempt that led to it), so a session that was online for an hour and then
hit a conflict still waits 180 s instead of reconnecting at once (invariant 3 of docs/design.md).
"""

from __future__ import annotations

import bisect
from typing import Any

from waz_actors.config import ConnectionConfig
from waz_actors.policy import _checks

# Per-instance memory bound: with a >= 1 s gap nobody records more than this in an hour window,
# but a caller that records without asking must not grow the lists without end.
MAX_EVENTS = 4096


class ConnectThrottle:
    def __init__(
        self,
        *,
        base: float = 60.0,
        attempts_threshold: int = 2,
        after_attempts: float = 120.0,
        after_conflict: float = 180.0,
        window: float = 3600.0,
    ) -> None:
        self.base = _checks.non_negative("base", base)
        self.attempts_threshold = _checks.count("attempts_threshold", attempts_threshold)
        self.after_attempts = _checks.non_negative("after_attempts", after_attempts)
        self.after_conflict = _checks.non_negative("after_conflict", after_conflict)
        self.window = _checks.positive("window", window)
        # The lengthened gaps never shorten the base gap, whatever the config says.
        self.after_attempts = max(self.after_attempts, self.base)
        self.after_conflict = max(self.after_conflict, self.base)
        self._attempts: list[float] = []  # sorted
        self._conflicts: list[float] = []  # sorted

    @classmethod
    def from_config(cls, cfg: ConnectionConfig) -> ConnectThrottle:
        return cls(
            base=cfg.throttle,
            attempts_threshold=cfg.throttle_attempts,
            after_attempts=cfg.throttle_after_attempts,
            after_conflict=cfg.throttle_after_conflict,
            window=cfg.throttle_window,
        )

    def record_attempt(self, now: float) -> None:
        _record(self._attempts, _checks.finite("now", now), self.window)

    def record_conflict(self, now: float) -> None:
        _record(self._conflicts, _checks.finite("now", now), self.window)

    def attempts_in_window(self, now: float) -> int:
        now = _checks.finite("now", now)
        return len(self._attempts) - bisect.bisect_right(self._attempts, now - self.window)

    def _latest_conflict(self, now: float) -> float | None:
        """The latest conflict inside the window if no attempt came after it."""
        if not self._conflicts:
            return None
        conflict = self._conflicts[-1]
        if conflict <= now - self.window:
            return None
        if self._attempts and self._attempts[-1] > conflict:
            return None
        return conflict

    def gap(self, now: float) -> float:
        now = _checks.finite("now", now)
        if self._latest_conflict(now) is not None:
            return self.after_conflict
        if self.attempts_in_window(now) > self.attempts_threshold:
            return self.after_attempts
        return self.base

    def next_allowed(self, now: float) -> float:
        now = _checks.finite("now", now)
        gap = self.gap(now)
        earliest = now
        if self._attempts:
            earliest = max(earliest, self._attempts[-1] + gap)
        conflict = self._latest_conflict(now)
        if conflict is not None:
            earliest = max(earliest, conflict + self.after_conflict)
        return earliest

    def allowed(self, now: float) -> bool:
        return self.next_allowed(now) <= now + _checks.TIME_EPSILON

    def snapshot(self, now: float) -> dict[str, Any]:
        now = _checks.finite("now", now)
        conflict = self._latest_conflict(now)
        return {
            "gap": self.gap(now),
            "attempts_in_window": self.attempts_in_window(now),
            "last_attempt": self._attempts[-1] if self._attempts else None,
            "last_conflict": conflict,
            "next_allowed": self.next_allowed(now),
            "allowed": self.allowed(now),
        }


def _record(times: list[float], now: float, window: float) -> None:
    # Sorted insert keeps "latest" meaningful even if a caller reports slightly out of order.
    bisect.insort(times, now)
    # Drop what fell out of the window (relative to the newest event), keep memory bounded.
    cut = bisect.bisect_right(times, times[-1] - window)
    if len(times) - cut > MAX_EVENTS:
        cut = len(times) - MAX_EVENTS
    if cut:
        del times[:cut]
