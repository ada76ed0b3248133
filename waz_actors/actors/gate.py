"""A daemon-wide limit on connection attempts per second, so a thousand instances starting
together dial one after another instead of all at once (staggered start-up)."""

from __future__ import annotations

import threading


class ConnectGate:
    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = float("-inf")
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Reserve the next slot; returns how long (daemon seconds) the caller must wait."""
        with self._lock:
            slot = max(now, self._next)
            self._next = slot + self._interval
            return slot - now
