"""Exponential backoff between connection attempts (dramatiq-style pure function)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from waz_actors.config import ConnectionConfig
from waz_actors.policy import _checks


def _raw(attempt: int, initial: float, multiplier: float, maximum: float) -> float:
    try:
        return min(maximum, initial * multiplier ** (attempt - 1))
    except OverflowError:
        # multiplier ** attempt overflows long after the cap was reached.
        return maximum


def compute_backoff(
    attempt: int,
    *,
    initial: float,
    multiplier: float,
    maximum: float,
    jitter: float = 0.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before attempt number `attempt + 1`, i.e. after the `attempt`-th failure.

    attempt 1 -> initial, then multiplied by `multiplier` each time, capped at `maximum`.
    `jitter` is a fraction: the delay is scaled by 1 + U(-jitter, +jitter), then clamped to
    [0, maximum], so jitter spreads reconnects out but never pushes a delay past the cap.
    Without jitter the result is monotone non-decreasing in `attempt`.
    """
    _checks.count("attempt", attempt, minimum=1)
    initial = _checks.non_negative("initial", initial)
    maximum = _checks.non_negative("maximum", maximum)
    if _checks.finite("multiplier", multiplier) < 1.0:
        raise ValueError(f"multiplier must be at least 1, got {multiplier!r}")
    jitter = _checks.fraction("jitter", jitter)
    delay = _raw(attempt, initial, multiplier, maximum)
    if jitter:
        delay *= 1.0 + jitter * (2.0 * _checks.unit(rand()) - 1.0)
    return min(maximum, max(0.0, delay))


@dataclass(frozen=True)
class BackoffPolicy:
    """The connection backoff settings bundled, so the actor holds one object."""

    initial: float = 5.0
    multiplier: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        # Validate once, at construction, with the same messages as compute_backoff.
        compute_backoff(
            1,
            initial=self.initial,
            multiplier=self.multiplier,
            maximum=self.maximum,
            jitter=self.jitter,
            rand=lambda: 0.5,
        )

    @classmethod
    def from_config(cls, cfg: ConnectionConfig) -> BackoffPolicy:
        return cls(
            initial=cfg.backoff_initial,
            multiplier=cfg.backoff_multiplier,
            maximum=cfg.backoff_max,
            jitter=cfg.backoff_jitter,
        )

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return compute_backoff(
            attempt,
            initial=self.initial,
            multiplier=self.multiplier,
            maximum=self.maximum,
            jitter=self.jitter,
            rand=rand,
        )
