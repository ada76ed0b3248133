"""Request and log limits for the control socket: token buckets per caller, and a log limiter.

Pure: the time comes in as `now` (real monotonic seconds: these limits protect the daemon from
its clients, so they are not scaled by daemon.time_scale); the caller owns any lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from waz_actors.policy import _checks

MAX_KEYS = 10_000  # callers (or log lines) remembered; beyond it idle ones are forgotten


@dataclass(slots=True)
class TokenBucket:
    """`rate` requests per second on average, up to `burst` at once."""

    rate: float
    burst: float
    tokens: float
    last: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float) -> float:
        """0.0 when a request may go now (and counts it), else the seconds until one may."""
        if now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def idle(self, now: float) -> bool:
        """Full again: forgetting it changes nothing."""
        return self.tokens + max(0.0, now - self.last) * self.rate >= self.burst


class RateLimits:
    """One token bucket per key (a token's hash). rate 0 turns the limit off."""

    def __init__(self, rate: float, burst: int, *, max_keys: int = MAX_KEYS) -> None:
        self.rate = _checks.non_negative("rate", rate)
        self.burst = float(_checks.count("burst", burst, minimum=1))
        self.max_keys = _checks.count("max_keys", max_keys, minimum=1)
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, now: float) -> float:
        """0.0 when the request may go, else `retry_after` in seconds."""
        if self.rate == 0:
            return 0.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_idle(now)
            bucket = self._buckets[key] = TokenBucket.full(self.rate, self.burst, now)
        return bucket.take(now)

    def _forget_idle(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if not b.idle(now)}
        if len(self._buckets) >= self.max_keys:
            # Every one is busy (a flood of distinct tokens): start over rather than grow.
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(slots=True)
class _Window:
    start: float
    count: int
    suppressed: int


class LogLimiter:
    """At most `burst` lines per key in each `interval`; the rest are counted, and the first
    line let through after them says how many were left out. One bad client sending the same
    broken frame a thousand times a second must not fill the disk with tracebacks."""

    def __init__(self, burst: int = 5, interval: float = 60.0, *, max_keys: int = 1000) -> None:
        self.burst = _checks.count("burst", burst, minimum=1)
        self.interval = _checks.positive("interval", interval)
        self.max_keys = _checks.count("max_keys", max_keys, minimum=1)
        self._windows: dict[str, _Window] = {}

    def check(self, key: str, now: float) -> tuple[bool, int]:
        """(log this line?, how many similar lines were suppressed before it)."""
        w = self._windows.get(key)
        if w is None or now - w.start >= self.interval:
            if w is None and len(self._windows) >= self.max_keys:
                self._windows = {
                    k: v for k, v in self._windows.items() if now - v.start < self.interval
                }
            suppressed = w.suppressed if w is not None else 0
            self._windows[key] = _Window(now, 1, 0)
            return True, suppressed
        if w.count < self.burst:
            w.count += 1
            return True, 0
        w.suppressed += 1
        return False, 0


__all__ = ["LogLimiter", "RateLimits", "TokenBucket"]
