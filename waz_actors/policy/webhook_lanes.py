"""The delivery worker's view of the outbox: pending deliveries in lanes, in memory.

One lane per (webhook, instance): a lane sends its head only, so a webhook sees one instance's
events in order. The worker loads pending rows in seq order (`loaded` is the highest seq seen,
so each look at the store reads only new rows, by primary key) up to `cap` rows in memory, and
reloads everything when the store says the webhooks changed (a delete, a redeliver, a 410).

Fair between webhooks: one webhook holds at most `per_webhook` rows in memory, and while the
memory is full any webhook may still hold `floor` rows; so a receiver that is slow but up
(its deliveries pile up) never holds back the loading of another webhook's deliveries. A
webhook whose row found no room is `behind`: its later rows are skipped by the loads in seq
order and read again by its own loads (`refills`, by the (webhook_id, seq) index) once it
has room, so its lanes keep their order.
The worker is the only consumer (one daemon per state directory), so this view stays exact
between reloads. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


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


_NONE: Mapping[int, float | None] = MappingProxyType({})


class Lanes:
    def __init__(self, cap: int, per_webhook: int | None = None, floor: int = 100) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        self.cap = cap
        self.per_webhook = max(1, per_webhook or cap)
        self.floor = max(1, min(floor, self.per_webhook))
        self.queues: dict[str, deque[Due]] = {}
        self.loaded = 0  # the highest seq loaded
        self.count = 0
        self.counts: dict[str, int] = {}  # webhook_id -> rows held
        # webhook_id -> the seq below which all its pending rows are held (its later rows wait
        # in the store for a refill)
        self.behind: dict[str, int] = {}

    def reset(self) -> None:
        self.queues.clear()
        self.loaded = 0
        self.count = 0
        self.counts.clear()
        self.behind.clear()

    def room(self) -> int:
        return self.cap - self.count

    def _space(self, webhook_id: str) -> int:
        """How many more rows `webhook_id` may hold now."""
        held = self.counts.get(webhook_id, 0)
        return min(self.per_webhook - held, max(self.floor - held, self.cap - self.count))

    def _push(self, d: Due, settled: Mapping[int, float | None] = _NONE) -> None:
        if d.seq in settled:
            # Settled while the read was under way (a reload empties the lanes first): its
            # outcome is written at the next look. Done: not sent again; retried: at its
            # backoff, not at the next_at the store still has.
            retry_at = settled[d.seq]
            if retry_at is None:
                return
            d = dataclasses.replace(d, attempts=d.attempts + 1, next_at=retry_at)
        self.queues.setdefault(d.key, deque()).append(d)
        self.counts[d.webhook_id] = self.counts.get(d.webhook_id, 0) + 1
        self.count += 1

    def add(self, rows: Iterable[Due], settled: Mapping[int, float | None] = _NONE) -> None:
        """Rows in seq order, all above `loaded` (a load in seq order of all webhooks).
        `settled`: the outcomes not written yet (seq -> retry at, or None: done), which win
        over the rows read back as pending."""
        for d in rows:
            self.loaded = max(self.loaded, d.seq)
            if d.webhook_id in self.behind:
                continue  # its refill reads it, in order
            if self._space(d.webhook_id) <= 0:
                self.behind[d.webhook_id] = d.seq - 1
                continue
            self._push(d, settled)

    def refills(self) -> list[tuple[str, int, int]]:
        """(webhook_id, after seq, limit) for each webhook behind that has room again (half
        of its share free, so a refill reads a batch, not a row at a time)."""
        out = []
        for webhook_id, after in self.behind.items():
            space = self._space(webhook_id)
            if space > 0 and self.counts.get(webhook_id, 0) <= self.per_webhook // 2:
                out.append((webhook_id, after, space))
        return out

    def refill(
        self,
        webhook_id: str,
        rows: list[Due],
        limit: int,
        upto: int,
        settled: Mapping[int, float | None] = _NONE,
    ) -> None:
        """A webhook's own rows above its `behind` mark up to `upto`, in seq order, at most
        `limit`: fewer than `limit` and it has caught up with the loads in seq order.
        `settled`: as in `add`."""
        if webhook_id not in self.behind:
            return  # reloaded meanwhile
        for d in rows:
            self._push(d, settled)
        mark = upto if len(rows) < limit else rows[-1].seq
        if mark >= self.loaded:
            del self.behind[webhook_id]
        else:
            self.behind[webhook_id] = mark

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
            self._gone(d.webhook_id)
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
                gone = q.popleft()
                out.append(gone)
                self._gone(gone.webhook_id)
            if not q:
                del self.queues[key]
        return out

    def _gone(self, webhook_id: str) -> None:
        self.count -= 1
        left = self.counts[webhook_id] - 1
        if left:
            self.counts[webhook_id] = left
        else:
            del self.counts[webhook_id]


__all__ = ["Due", "Lanes"]
