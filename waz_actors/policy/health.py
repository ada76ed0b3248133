"""Queue health: a rolling success rate, the seed's traffic light, and advice for operators.

Thresholds (seed values, borders decided here):
- healthy:  success rate > 80 % AND queue depth < 10
- warning:  success rate 60-80 % (both ends included) or queue depth 10..19, nothing worse
- critical: success rate < 60 % or queue depth >= 20
The verdict is the worse of the success verdict and the queue verdict. No outcome yet counts as
a healthy success rate: a new instance with an empty queue is healthy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from waz_actors.config import HealthConfig
from waz_actors.policy import _checks
from waz_actors.types import Health, InstanceState

_RANK = {Health.HEALTHY: 0, Health.WARNING: 1, Health.CRITICAL: 2}


class SuccessWindow:
    """Send outcomes over the last `window` seconds, in `buckets` time buckets.

    Memory is bounded by the bucket count; the window edge is as coarse as one bucket
    (window / buckets seconds, 60 s with the defaults), which is plenty for a health verdict.
    """

    def __init__(self, window: float = 3600.0, buckets: int = 60) -> None:
        self.window = _checks.positive("window", window)
        self.buckets = _checks.count("buckets", buckets, minimum=1)
        self._width = self.window / self.buckets
        self._counts: dict[int, list[int]] = {}  # bucket index -> [ok, failed]
        self._newest = -math.inf

    @classmethod
    def from_config(cls, cfg: HealthConfig, window: float = 3600.0) -> SuccessWindow:
        del cfg  # the config has no window setting yet; kept for a uniform constructor
        return cls(window=window)

    def record(self, now: float, ok: bool) -> None:
        now = _checks.finite("now", now)
        if not isinstance(ok, bool):
            raise ValueError(f"ok must be True or False, got {ok!r}")
        index = self._index(now)
        self._newest = max(self._newest, index)
        if index <= self._newest - self.buckets:
            return  # older than anything the window still covers
        self._counts.setdefault(index, [0, 0])[0 if ok else 1] += 1
        for old in [i for i in self._counts if i <= self._newest - self.buckets]:
            del self._counts[old]

    def counts(self, now: float) -> tuple[int, int]:
        """(ok, failed) outcomes inside the window ending at `now`."""
        current = self._index(_checks.finite("now", now))
        ok = failed = 0
        for index, (o, f) in self._counts.items():
            if current - self.buckets < index <= current:
                ok += o
                failed += f
        return ok, failed

    def rate(self, now: float) -> float | None:
        """Share of successful outcomes in the window; None when there was none."""
        ok, failed = self.counts(now)
        total = ok + failed
        return ok / total if total else None

    def _index(self, now: float) -> int:
        return math.floor(now / self._width)


@dataclass(frozen=True)
class HealthThresholds:
    healthy_success: float = 0.8
    warning_success: float = 0.6
    healthy_queue: int = 10
    warning_queue: int = 20

    def __post_init__(self) -> None:
        _checks.fraction("healthy_success", self.healthy_success)
        _checks.fraction("warning_success", self.warning_success)
        _checks.count("healthy_queue", self.healthy_queue)
        _checks.count("warning_queue", self.warning_queue)
        if self.warning_success > self.healthy_success:
            raise ValueError("warning_success must not exceed healthy_success")
        if self.warning_queue < self.healthy_queue:
            raise ValueError("warning_queue must not be below healthy_queue")

    @classmethod
    def from_config(cls, cfg: HealthConfig) -> HealthThresholds:
        return cls(
            healthy_success=cfg.healthy_success,
            warning_success=cfg.warning_success,
            healthy_queue=cfg.healthy_queue,
            warning_queue=cfg.warning_queue,
        )

    def assess(self, success_rate: float | None, queue_depth: int) -> Health:
        return assess(
            success_rate,
            queue_depth,
            healthy_success=self.healthy_success,
            warning_success=self.warning_success,
            healthy_queue=self.healthy_queue,
            warning_queue=self.warning_queue,
        )


def assess(
    success_rate: float | None,
    queue_depth: int,
    *,
    healthy_success: float = 0.8,
    warning_success: float = 0.6,
    healthy_queue: int = 10,
    warning_queue: int = 20,
) -> Health:
    if success_rate is not None:
        _checks.fraction("success_rate", success_rate)
    _checks.count("queue_depth", queue_depth)
    if success_rate is None or success_rate > healthy_success:
        by_rate = Health.HEALTHY
    elif success_rate >= warning_success:
        by_rate = Health.WARNING
    else:
        by_rate = Health.CRITICAL
    if queue_depth < healthy_queue:
        by_queue = Health.HEALTHY
    elif queue_depth < warning_queue:
        by_queue = Health.WARNING
    else:
        by_queue = Health.CRITICAL
    return max(by_rate, by_queue, key=_RANK.__getitem__)


_BREAKER_STATES = ("closed", "open", "half_open")


def recommendations(
    *,
    health: Health,
    success_rate: float | None,
    queue_depth: int,
    state: str,
    conflicts_last_hour: int,
    breaker_state: str,
    oldest_age: float | None,
    healthy_success: float = 0.8,
    healthy_queue: int = 10,
    stale_after: float = 600.0,
) -> list[str]:
    """Short advice for a person reading `queue.status`, most urgent first; [] when all is well.

    Modelled on the seeds' troubleshooting list (low success rate, high backlog); the
    control command `queue.status` answers with it.
    """
    health = Health(health)
    try:
        st = InstanceState(state)
    except ValueError:
        known = ", ".join(s.value for s in InstanceState)
        raise ValueError(f"state must be one of {known}, got {state!r}") from None
    if breaker_state not in _BREAKER_STATES:
        raise ValueError(
            f"breaker_state must be one of {', '.join(_BREAKER_STATES)}, got {breaker_state!r}"
        )
    if success_rate is not None:
        _checks.fraction("success_rate", success_rate)
    _checks.count("queue_depth", queue_depth)
    _checks.count("conflicts_last_hour", conflicts_last_hour)
    if oldest_age is not None:
        _checks.non_negative("oldest_age", oldest_age)

    advice: list[str] = []
    if st is InstanceState.LOGGED_OUT:
        advice.append("The device was unlinked from the phone: pair again (instance pair).")
    elif st is InstanceState.BANNED:
        advice.append(
            "WhatsApp banned this number for a while: wait for the ban to expire, "
            "and reduce sending frequency afterwards."
        )
    if breaker_state != "closed" or st is InstanceState.TRIPPED:
        advice.append(
            "The circuit breaker is open after repeated failures: wait for its reset probe, "
            "or fix the cause and run `instance reset`."
        )
    if conflicts_last_hour > 0:
        advice.append(
            f"{conflicts_last_hour} conflict(s) (440) in the last hour: another WhatsApp Web "
            "session or server uses this number; close it and keep only this daemon connected."
        )
    if st is InstanceState.STOPPED and queue_depth:
        advice.append(
            f"The instance is stopped with {queue_depth} queued: start it to deliver "
            "(instance.start)."
        )
    elif st is InstanceState.PAIRING:
        advice.append("Waiting for the phone: scan the QR code or enter the pairing code.")
    elif st is InstanceState.COOLDOWN:
        advice.append(
            "Cooling down after a conflict (440): make sure no other client uses this number; "
            "queued messages are sent once the cooldown ends."
        )
    elif st in (InstanceState.CONNECTING, InstanceState.BACKOFF):
        advice.append(
            f"The session is not online ({st.value}): check session connectivity; "
            "queued messages wait and are sent once it reconnects."
        )
    if success_rate is not None and success_rate <= healthy_success:
        advice.append(
            f"Success rate is {success_rate:.0%}: reduce sending frequency and check "
            "connection stability."
        )
    if queue_depth >= healthy_queue:
        advice.append(
            f"Queue backlog of {queue_depth}: verify session connectivity and hold bulk sends "
            "until it drains; purge stale messages if they are no longer wanted (queue purge)."
        )
    if oldest_age is not None and oldest_age >= stale_after:
        advice.append(
            f"The oldest queued message has waited {oldest_age:.0f} s: check whether the "
            "session is delivering at all."
        )
    if not advice and health is not Health.HEALTHY:
        advice.append("Check the queue status and the instance's recent state changes.")
    return advice
