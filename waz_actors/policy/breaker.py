"""Circuit breaker over connection attempts.

CLOSED counts consecutive failed attempts; MORE than `failure_threshold` of them trip it (the
seed: "breaker after more than 5 failed attempts"). OPEN refuses attempts until its reset time,
then lets exactly one probe through (HALF_OPEN). The probe's success closes it; its failure
re-opens it with a longer reset time.

Trip history: `trips` is kept when the breaker closes, so an instance that flaps (trip, probe
succeeds, trips again soon) waits longer every time: reset_timeout * reset_multiplier**(trips-1),
capped at reset_timeout_max. The count decays to zero only after the breaker has stayed closed
for `clean_period` (default: reset_timeout_max) — a long clean run, not a brief success.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from waz_actors.config import BreakerConfig
from waz_actors.policy import _checks


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 300.0,
        reset_timeout_max: float = 3600.0,
        reset_multiplier: float = 2.0,
        clean_period: float | None = None,
    ) -> None:
        self.failure_threshold = _checks.count("failure_threshold", failure_threshold)
        self.reset_timeout = _checks.positive("reset_timeout", reset_timeout)
        self.reset_timeout_max = _checks.positive("reset_timeout_max", reset_timeout_max)
        if self.reset_timeout_max < self.reset_timeout:
            raise ValueError(
                f"reset_timeout_max ({reset_timeout_max!r}) must not be below "
                f"reset_timeout ({reset_timeout!r})"
            )
        self.reset_multiplier = _checks.finite("reset_multiplier", reset_multiplier)
        if self.reset_multiplier < 1.0:
            raise ValueError(f"reset_multiplier must be at least 1, got {reset_multiplier!r}")
        self.clean_period = (
            self.reset_timeout_max
            if clean_period is None
            else _checks.positive("clean_period", clean_period)
        )
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.trips = 0
        self.opened_at: float | None = None
        self.last_reason = ""
        self._closed_at: float | None = None  # when it last closed after a trip

    @classmethod
    def from_config(cls, cfg: BreakerConfig) -> CircuitBreaker:
        return cls(
            failure_threshold=cfg.failure_threshold,
            reset_timeout=cfg.reset_timeout,
            reset_timeout_max=cfg.reset_timeout_max,
            reset_multiplier=cfg.reset_multiplier,
        )

    # -- queries -------------------------------------------------------------------------------

    def current_reset_timeout(self) -> float:
        """How long the breaker stays open on this trip (grows with the trip count)."""
        if self.trips <= 1:
            return self.reset_timeout
        try:
            grown = self.reset_timeout * self.reset_multiplier ** (self.trips - 1)
        except OverflowError:
            return self.reset_timeout_max
        return min(self.reset_timeout_max, grown)

    def next_probe_at(self) -> float | None:
        """When an OPEN breaker lets its probe through; None when closed or a probe is out."""
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return None
        return self.opened_at + self.current_reset_timeout()

    def allow(self, now: float) -> bool:
        """May a connection attempt start now? Moving OPEN -> HALF_OPEN hands out the one probe."""
        now = _checks.finite("now", now)
        self._decay(now)
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN:
            return False  # the probe is still in flight
        probe_at = self.next_probe_at()
        if probe_at is not None and now + _checks.TIME_EPSILON >= probe_at:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    # -- outcomes ------------------------------------------------------------------------------

    def record_success(self, now: float) -> None:
        """A connection attempt succeeded (the caller decides when: e.g. stable for a minute).

        Closes a HALF_OPEN breaker. An OPEN breaker ignores it: only a probe or an operator
        reset leaves OPEN, so a stale report from an attempt begun before a forced trip cannot
        re-open the door (invariant 3 of docs/design.md: a short online does not reset the breaker).
        """
        now = _checks.finite("now", now)
        self._decay(now)
        if self.state is BreakerState.OPEN:
            return
        if self.state is BreakerState.HALF_OPEN:
            self.state = BreakerState.CLOSED
            self.opened_at = None
            self._closed_at = now
        self.consecutive_failures = 0

    def record_failure(self, now: float, reason: str = "") -> bool:
        """A connection attempt failed. Returns True if this failure opened the breaker."""
        now = _checks.finite("now", now)
        reason = _reason(reason)
        self._decay(now)
        self.consecutive_failures += 1
        if reason:
            self.last_reason = reason
        if self.state is BreakerState.HALF_OPEN:
            self._open(now, reason or "probe failed")
            return True
        if self.state is BreakerState.CLOSED and self.consecutive_failures > self.failure_threshold:
            self._open(now, reason or f"{self.consecutive_failures} consecutive failures")
            return True
        return False

    def trip(self, now: float, reason: str) -> None:
        """Force OPEN (conflict storm, restart intensity). Tripping an OPEN breaker restarts
        its reset timer without counting another trip, so repeated calls do not escalate."""
        now = _checks.finite("now", now)
        reason = _reason(reason)
        self._decay(now)
        if self.state is BreakerState.OPEN:
            self.opened_at = now
            self.last_reason = reason or self.last_reason
            return
        self._open(now, reason or "tripped")

    def reset(self) -> None:
        """Operator reset: closed, failure and trip counts cleared."""
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.trips = 0
        self.opened_at = None
        self.last_reason = ""
        self._closed_at = None

    def snapshot(self, now: float) -> dict[str, Any]:
        now = _checks.finite("now", now)
        self._decay(now)
        return {
            "state": str(self.state),
            "consecutive_failures": self.consecutive_failures,
            "trips": self.trips,
            "opened_at": self.opened_at,
            "next_probe_at": self.next_probe_at(),
            "reset_timeout": self.current_reset_timeout(),
            "reason": self.last_reason,
        }

    # -- internals -----------------------------------------------------------------------------

    def _open(self, now: float, reason: str) -> None:
        self.state = BreakerState.OPEN
        self.trips += 1
        self.opened_at = now
        self.last_reason = reason
        self._closed_at = None

    def _decay(self, now: float) -> None:
        if (
            self.state is BreakerState.CLOSED
            and self.trips
            and self._closed_at is not None
            and now - self._closed_at >= self.clean_period
        ):
            self.trips = 0
            self._closed_at = None


def _reason(reason: str) -> str:
    if not isinstance(reason, str):
        raise ValueError(f"reason must be a string, got {reason!r}")
    return reason
