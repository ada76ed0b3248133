"""Rolling figures for `watch` and the tally for `probe`: plain classes, time passed in.

Indicator thresholds are the seeds' (green/yellow/red): conflicts per hour 0 / 1 / more;
connection attempts per hour up to 30 / up to 60 / more; success rate above 80% / 60-80% /
below; availability 90%+ / 75-90% / below.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

GREEN, YELLOW, RED = "green", "yellow", "red"


def conflicts_level(per_hour: int | None) -> str | None:
    if per_hour is None:
        return None
    return GREEN if per_hour == 0 else YELLOW if per_hour == 1 else RED


def attempts_level(per_hour: int | None) -> str | None:
    if per_hour is None:
        return None
    return GREEN if per_hour <= 30 else YELLOW if per_hour <= 60 else RED


def success_level(rate: float | None) -> str | None:
    if rate is None:
        return None
    return GREEN if rate > 0.8 else YELLOW if rate >= 0.6 else RED


def availability_level(share: float | None) -> str | None:
    if share is None:
        return None
    return GREEN if share >= 0.9 else YELLOW if share >= 0.75 else RED


@dataclass
class InstanceFigures:
    """One instance as seen by `watch`: its own observed history plus the daemon's windows."""

    instance_id: str
    state: str | None = None
    state_at: float | None = None  # when we saw it enter `state` (our clock)
    online_time: float = 0.0
    watched_from: float | None = None
    conflicts_seen: int = 0
    sent_seen: int = 0
    failed_seen: int = 0
    events: int = 0
    # From the daemon's instance.get (its rolling windows, already time-scaled).
    conflicts_per_hour: int | None = None
    attempts_per_hour: int | None = None
    daemon_success: float | None = None
    health: str | None = None

    def set_state(self, state: str, now: float) -> None:
        if self.watched_from is None:
            self.watched_from = now
        self._accrue(now)
        self.state, self.state_at = state, now

    def _accrue(self, now: float) -> None:
        if self.state == "online" and self.state_at is not None:
            self.online_time += max(0.0, now - self.state_at)
        self.state_at = now

    def availability(self, now: float) -> float | None:
        if self.watched_from is None or now <= self.watched_from:
            return None
        online = self.online_time
        if self.state == "online" and self.state_at is not None:
            online += max(0.0, now - self.state_at)
        return min(1.0, online / (now - self.watched_from))

    def success_rate(self) -> float | None:
        """Outcomes seen while watching; the daemon's rolling rate until there are some."""
        done = self.sent_seen + self.failed_seen
        return self.sent_seen / done if done else self.daemon_success

    def update_from(self, info: dict[str, Any], now: float) -> None:
        """Fold in an instance.get answer."""
        conflicts = info.get("conflicts") or {}
        throttle = info.get("throttle") or {}
        self.conflicts_per_hour = conflicts.get("count")
        self.attempts_per_hour = throttle.get("attempts_in_window")
        self.daemon_success = info.get("success_rate")
        self.health = info.get("health")
        if info.get("state") and info["state"] != self.state:
            self.set_state(info["state"], now)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "state": self.state,
            "health": self.health,
            "conflicts_per_hour": self.conflicts_per_hour,
            "attempts_per_hour": self.attempts_per_hour,
            "success_rate": self.success_rate(),
            "availability": self.availability(now),
            "conflicts_seen": self.conflicts_seen,
            "sent_seen": self.sent_seen,
            "failed_seen": self.failed_seen,
            "events": self.events,
            "levels": {
                "conflicts": conflicts_level(self.conflicts_per_hour),
                "attempts": attempts_level(self.attempts_per_hour),
                "success": success_level(self.success_rate()),
                "availability": availability_level(self.availability(now)),
            },
        }


@dataclass
class Board:
    """Every watched instance, fed by events (topic, body) and by polls."""

    instances: dict[str, InstanceFigures] = field(default_factory=dict)
    alarms: list[dict[str, Any]] = field(default_factory=list)

    def get(self, instance_id: str) -> InstanceFigures:
        fig = self.instances.get(instance_id)
        if fig is None:
            fig = self.instances[instance_id] = InstanceFigures(instance_id)
        return fig

    def on_event(self, topic: str, body: dict[str, Any], now: float) -> None:
        if topic == "daemon.alarm":
            self.alarms.append(body)
            return
        iid = body.get("instance_id")
        if not isinstance(iid, str):
            return
        fig = self.get(iid)
        fig.events += 1
        if topic.endswith(".state") and isinstance(body.get("state"), str):
            fig.set_state(body["state"], now)
        elif topic.endswith(".conflict"):
            fig.conflicts_seen += 1
            if fig.conflicts_per_hour is not None:
                fig.conflicts_per_hour = max(
                    fig.conflicts_per_hour, int(body.get("count_in_window") or 0)
                )
        elif topic.endswith(".status"):
            if body.get("status") == "sent":
                fig.sent_seen += 1
            elif body.get("status") in ("failed", "expired"):
                fig.failed_seen += 1

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "instances": {k: v.to_dict(now) for k, v in sorted(self.instances.items())},
            "alarms": self.alarms,
        }


FINAL = ("sent", "failed", "cancelled", "expired", "unknown")


@dataclass
class ProbeTally:
    """Probe messages from send to outcome; latency is from our send call to the event."""

    sent_at: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def sent(self, message_id: str, now: float) -> None:
        if message_id not in self.sent_at:
            self.sent_at[message_id] = now
            self.order.append(message_id)

    def outcome(
        self, message_id: str, status: str, now: float, reason: str | None = None
    ) -> dict[str, Any] | None:
        """Record a final status once; returns the new outcome, or None if not news."""
        if message_id not in self.sent_at or message_id in self.outcomes or status not in FINAL:
            return None
        out = {
            "n": self.order.index(message_id) + 1,
            "message_id": message_id,
            "status": status,
            "ok": status == "sent",
            "latency": round(max(0.0, now - self.sent_at[message_id]), 4),
            "reason": reason,
        }
        self.outcomes[message_id] = out
        return out

    def time_out(self, now: float, timeout: float) -> list[dict[str, Any]]:
        late = [m for m in self.pending() if now - self.sent_at[m] >= timeout]
        out = []
        for m in late:
            self.outcomes[m] = {
                "n": self.order.index(m) + 1,
                "message_id": m,
                "status": "timeout",
                "ok": False,
                "latency": None,
                "reason": f"no outcome within {timeout:g} s",
            }
            out.append(self.outcomes[m])
        return out

    def pending(self) -> list[str]:
        return [m for m in self.order if m not in self.outcomes]

    def success_rate(self) -> float | None:
        return (
            sum(1 for o in self.outcomes.values() if o["ok"]) / len(self.order)
            if self.order
            else None
        )

    def summary(self) -> dict[str, Any]:
        lat = [o["latency"] for o in self.outcomes.values() if o["ok"]]
        return {
            "count": len(self.order),
            "sent": sum(1 for o in self.outcomes.values() if o["ok"]),
            "failed": sum(1 for o in self.outcomes.values() if not o["ok"]),
            "pending": len(self.pending()),
            "success_rate": self.success_rate(),
            "latency": {
                "min": min(lat) if lat else None,
                "median": statistics.median(lat) if lat else None,
                "max": max(lat) if lat else None,
            },
            "results": [self.outcomes.get(m, {"message_id": m}) for m in self.order],
        }
