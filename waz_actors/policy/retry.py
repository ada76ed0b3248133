"""Send retries: how long a failed message waits, and whether it is tried again.

Counting rule (decided here, used everywhere): `max_retries` is the number of RETRIES after the
first attempt, so the seed's "send retries 3" means at most 1 + 3 = 4 attempts in total. Only
attempts that reached WhatsApp and failed count; disconnects, conflicts, restarts and crashes
never consume one (invariant 4 of docs/design.md), which is the caller's job: it simply does
not count them.
"""

from __future__ import annotations

from dataclasses import dataclass

from waz_actors.config import QueueConfig
from waz_actors.policy import _checks
from waz_actors.policy.backoff import compute_backoff


def retry_delay(
    attempt: int, *, initial: float = 5.0, multiplier: float = 2.0, maximum: float = 300.0
) -> float:
    """Wait before the retry that follows failed attempt number `attempt`: 5, 10, 20, ... capped."""
    return compute_backoff(attempt, initial=initial, multiplier=multiplier, maximum=maximum)


def should_retry(attempts: int, *, max_retries: int, permanent: bool) -> bool:
    """After `attempts` failed attempts (>= 1), may the message be tried again?

    A permanent error (bad number, message rejected) is never retried. Otherwise retry while
    fewer than 1 + max_retries attempts were made: with max_retries=3, attempts 1, 2 and 3 are
    followed by a retry, the 4th failure is final.
    """
    _checks.count("attempts", attempts, minimum=1)
    _checks.count("max_retries", max_retries)
    if permanent:
        return False
    return attempts <= max_retries


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    initial: float = 5.0
    multiplier: float = 2.0
    maximum: float = 300.0

    def __post_init__(self) -> None:
        _checks.count("max_retries", self.max_retries)
        retry_delay(1, initial=self.initial, multiplier=self.multiplier, maximum=self.maximum)

    @classmethod
    def from_config(cls, cfg: QueueConfig) -> RetryPolicy:
        return cls(
            max_retries=cfg.max_retries,
            initial=cfg.retry_delay,
            multiplier=cfg.retry_multiplier,
        )

    def delay(self, attempt: int) -> float:
        return retry_delay(
            attempt, initial=self.initial, multiplier=self.multiplier, maximum=self.maximum
        )

    def should_retry(self, attempts: int, *, permanent: bool) -> bool:
        return should_retry(attempts, max_retries=self.max_retries, permanent=permanent)

    @property
    def max_attempts(self) -> int:
        return 1 + self.max_retries
