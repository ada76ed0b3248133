"""The status board: the latest snapshot of every instance, readable from any thread.

Instances publish an immutable snapshot after each change; status reads (instance.list,
instance.get, daemon.status, the watchdog) read here and never touch an actor, so a read can
neither block on a stuck actor nor start a connection (invariant 2).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from waz_actors.store.records import InstanceRecord


@dataclass(frozen=True, slots=True)
class InstanceSnapshot:
    instance_id: str
    tenant: str
    driver: str
    state: str
    since: float  # wall time of the last state change
    desired: str = "stopped"
    jid: str | None = None
    last_code: int | None = None
    last_reason: str | None = None
    breaker: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, Any] = field(default_factory=dict)
    throttle: dict[str, Any] = field(default_factory=dict)
    next_attempt_at: float | None = None  # wall time
    queue_depth: int = 0
    in_flight: int = 0
    sent: int = 0
    failed: int = 0
    success_rate: float | None = None
    health: str = "healthy"
    pairing: dict[str, Any] | None = None
    connect_attempts: int = 0
    online_seconds: float = 0.0  # daemon seconds spent online, for availability figures
    recycles: int = 0  # sessions closed by the liveness check ("connected but dead")
    keepalive_failures: int = 0  # the library's keep-alive timeouts (whatsmeow)

    @classmethod
    def placeholder(
        cls,
        rec: InstanceRecord,
        queue_depth: int,
        reason: str | None = None,
        *,
        as_saved: bool = False,
    ) -> InstanceSnapshot:
        """What the board shows for an instance whose actor has not booted yet.

        Without it a command sent while the daemon is still spawning its actors would hear
        `not_found` for an instance that exists, and a client treats that as final.
        `as_saved`: the state its running owner saved (a cluster node reading another's)."""
        kept = rec.state if as_saved or rec.state in ("logged_out", "banned") else "stopped"
        return cls(
            instance_id=rec.instance_id,
            tenant=rec.tenant,
            driver=rec.driver,
            state=kept,
            since=rec.since,
            desired=rec.desired,
            jid=rec.jid,
            last_code=rec.last_code,
            last_reason=reason or rec.last_reason,
            queue_depth=queue_depth,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "state": self.state,
            "since": self.since,
            "queue_depth": self.queue_depth,
            "health": self.health,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StatusBoard:
    def __init__(self) -> None:
        self._snaps: dict[str, InstanceSnapshot] = {}
        self._lock = threading.Lock()

    def put(self, snap: InstanceSnapshot) -> None:
        with self._lock:
            self._snaps[snap.instance_id] = snap

    def put_if_absent(self, snap: InstanceSnapshot) -> None:
        with self._lock:
            self._snaps.setdefault(snap.instance_id, snap)

    def remove(self, instance_id: str) -> None:
        with self._lock:
            self._snaps.pop(instance_id, None)

    def get(self, instance_id: str) -> InstanceSnapshot | None:
        return self._snaps.get(instance_id)

    def all(self) -> list[InstanceSnapshot]:
        with self._lock:
            return list(self._snaps.values())

    def __len__(self) -> int:
        return len(self._snaps)
