"""What the fake network saw, for tests, benchmarks and `sim.stats`: read-only views."""

from __future__ import annotations

import threading
from typing import Any

from waz_actors.drivers.sim.model import STAT_KEYS, SimInstance


class Observed:
    """The network's read side; SimNetwork fills these fields under its lock."""

    _lock: threading.Lock
    _instances: dict[str, SimInstance]
    _log: list[tuple[str, str, str, float]]  # message id, instance id, to, wall time
    _media: dict[str, dict[str, Any]]
    _faults: dict[str, int]
    incoming: int

    def stats(self) -> dict[str, Any]:
        with self._lock:
            per = {iid: inst.stats.as_dict() for iid, inst in self._instances.items()}
            faults = dict(self._faults)
        totals = {key: sum(s[key] for s in per.values()) for key in STAT_KEYS}
        return {"instances": per, "totals": totals, "faults": faults, "incoming": self.incoming}

    def delivered_ids(self, instance_id: str) -> list[str]:
        with self._lock:
            return [mid for mid, iid, _, _ in self._log if iid == instance_id]

    def delivered_log(self) -> list[dict[str, Any]]:
        with self._lock:
            log = list(self._log)
            media = dict(self._media)
        return [
            {"message_id": mid, "instance_id": iid, "to": to, "time": t}
            | ({"media": media[mid]} if mid in media else {})
            for mid, iid, to, t in log
        ]

    def delivered_media(self, message_id: str) -> dict[str, Any] | None:
        """What the driver fetched and this network "delivered" for a media message."""
        with self._lock:
            found = self._media.get(message_id)
        return dict(found) if found is not None else None

    def session_states(self, instance_id: str) -> list[str]:
        """States of the instance's open sessions, oldest first (diagnostics, invariant checks)."""
        with self._lock:
            inst = self._instances.get(instance_id)
            return [session.state for session in inst.sessions] if inst else []

    def instance_ids(self, *, live_only: bool = False) -> list[str]:
        with self._lock:
            return sorted(
                iid
                for iid, inst in self._instances.items()
                if not live_only or inst.live_session() is not None
            )
