"""Pure policies: backoff, breaker, connect throttle, send pacing, conflict history, health.

No threads, no I/O: the time comes in as `now` (daemon seconds), randomness as `rand`.
"""

from waz_actors.policy.backoff import BackoffPolicy, compute_backoff
from waz_actors.policy.breaker import BreakerState, CircuitBreaker
from waz_actors.policy.conflicts import ConflictHistory, conflict_cooldown
from waz_actors.policy.health import HealthThresholds, SuccessWindow, assess, recommendations
from waz_actors.policy.pacing import Pacer
from waz_actors.policy.retry import RetryPolicy, retry_delay, should_retry
from waz_actors.policy.throttle import ConnectThrottle

__all__ = [
    "BackoffPolicy",
    "BreakerState",
    "CircuitBreaker",
    "ConflictHistory",
    "ConnectThrottle",
    "HealthThresholds",
    "Pacer",
    "RetryPolicy",
    "SuccessWindow",
    "assess",
    "compute_backoff",
    "conflict_cooldown",
    "recommendations",
    "retry_delay",
    "should_retry",
]
