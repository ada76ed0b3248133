"""The delivery worker's view of the outbox: pending deliveries in lanes, in memory.

One lane per (webhook, instance): a lane sends its head only, so a webhook sees one instance's
events in order. The worker loads pending rows in seq order (`loaded` is the highest seq seen,
so each look at the store reads only new rows, by primary key) up to `cap` rows in memory, and
reloads everything when the store says the webhooks changed (a delete, a redeliver, a 410).
The worker is the only consumer (one daemon per state directory), so this view stays exact
between reloads. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Due:
    """A pending delivery, with what sending it needs."""

    seq: int
    webhook_id: str
    event_id: str
    event: str
    lane: str  # the instance id, or ""
    attempts: int
    next_at: float  # wall time
    created_at: float  # wall time
    url: str
    secret: str
    body: str

    @property
    def key(self) -> str:
        return f"{self.webhook_id} {self.lane}"


class Lanes:
    def __init__(self, cap: int) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self.queues: dict[str, deque[Due]] = {}
        self.loaded = 0  # the highest seq loaded
        self.count = 0

    def reset(self) -> None:
        self.queues.clear()
        self.loaded = 0
        self.count = 0

    def room(self) -> int:
        return self.cap - self.count

    def add(self, rows: Iterable[Due]) -> None:
        """Rows in seq order, all above `loaded`."""
        for d in rows:
            self.queues.setdefault(d.key, deque()).append(d)
            self.loaded = max(self.loaded, d.seq)
            self.count += 1

    def take(
        self, now: float, busy: Collection[str], held: Collection[str], limit: int
    ) -> list[Due]:
        """Heads due by `now` of lanes neither in flight nor held (an open breaker)."""
        out: list[Due] = []
        for key, q in self.queues.items():
            if len(out) >= limit:
                break
            head = q[0]
            if key in busy or head.webhook_id in held or head.next_at > now:
                continue
            out.append(head)
        return out

    def next_at(self, busy: Collection[str], held: Collection[str]) -> float | None:
        """When the next waiting head falls due (None: nothing waits)."""
        times = [
            q[0].next_at
            for key, q in self.queues.items()
            if key not in busy and q[0].webhook_id not in held
        ]
        return min(times) if times else None

    def settle(self, d: Due, retry_at: float | None) -> None:
        """After an attempt: the head leaves its lane, or (retry_at) waits until then."""
        q = self.queues.get(d.key)
        if not q or q[0].seq != d.seq:
            return  # reloaded meanwhile: the store's view wins
        if retry_at is None:
            q.popleft()
            self.count -= 1
            if not q:
                del self.queues[d.key]
        else:
            q[0] = dataclasses.replace(d, attempts=d.attempts + 1, next_at=retry_at)

    def expire(self, cutoff: float, busy: Collection[str]) -> list[Due]:
        """Take out every delivery created before `cutoff` (wall) from the heads of the lanes
        not in flight: max_age passed, whatever held it back."""
        out: list[Due] = []
        for key in list(self.queues):
            if key in busy:
                continue
            q = self.queues[key]
            while q and q[0].created_at < cutoff:
                out.append(q.popleft())
                self.count -= 1
            if not q:
                del self.queues[key]
        return out


__all__ = ["Due", "Lanes"]
