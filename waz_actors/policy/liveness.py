""" "Connected but dead": a session that says it is online while nothing moves.

WhatsApp's own keep-alive runs inside the driver; this is the daemon's view of it. While the
instance is online and has sends pending, every send result and every driver event is progress.
No progress for `keepalive x factor` daemon seconds means the link is dead though nobody said so
(a half-open TCP connection, a host that swallows commands): the instance recycles the session
through its normal throttled connect path. An idle session (nothing pending) is never judged:
silence is then normal. Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass

from waz_actors.config import ConnectionConfig


@dataclass
class Liveness:
    keepalive: float  # daemon seconds; 0 turns the check off
    factor: float = 3.0
    last_progress: float = 0.0
    recycles: int = 0  # sessions found dead, for the snapshot

    @classmethod
    def from_config(cls, cfg: ConnectionConfig) -> Liveness:
        return cls(keepalive=cfg.keepalive)

    @property
    def window(self) -> float:
        return self.keepalive * self.factor

    def progress(self, now: float) -> None:
        self.last_progress = now

    def check(self, now: float, *, online: bool, pending: bool) -> tuple[bool, float]:
        """(dead, seconds until the next check). Not online or nothing pending: the clock
        restarts, since silence is then no sign of a dead link."""
        if self.keepalive <= 0:
            return False, 0.0
        if not (online and pending):
            self.last_progress = now
            return False, self.window
        silent = now - self.last_progress
        if silent >= self.window:
            self.recycles += 1
            self.last_progress = now
            return True, self.window
        return False, self.window - silent


__all__ = ["Liveness"]
