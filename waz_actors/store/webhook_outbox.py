"""The webhook outbox's fan-out and write-back, shared by the delivery worker and the daemon.

The delivery worker (waz_actors/delivery/) runs in a process of its own and READS the database
through a connection of its own: the next events past the fan-out cursor and the webhooks that
want them (`Outbox.plan`: the delivery rows, computed in the worker), the pending deliveries
(`load_pending`). It never writes: each of its looks sends ONE `Write` (the outcomes of its
attempts since the last look, the deliveries gone dead, and the planned fan-out with the cursor
move) to the daemon, whose group-commit writer applies it (`apply`) in a transaction among the
sends'. On SQLite that keeps one writer on the file: no second process holds the write lock
while the daemon's writer waits on it (measured: with the worker writing for itself, more than
half of the daemon's commits waited for the lock, and a worker at a lower CPU priority, holding
it, is preempted by everything else). On PostgreSQL it is the same path.

The fan-out's cursor moves by compare-and-set in the transaction that inserts the rows: a plan
made from a cursor that moved since (another node's worker, a write retried) inserts nothing,
and a crash before the commit leaves the cursor where it was, so the events are fanned out
again (the same event ids; the rows of an event are written once per webhook). On PostgreSQL the
events' `seq` comes from a sequence, and a daemon of the cluster may commit an event after
another committed a higher one; the plan therefore only reads up to a horizon taken under a
SHARE lock of the events table (which waits out the transactions inserting right then), so it
never steps over an event that commits later.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from waz_actors.policy import webhooks as rules
from waz_actors.policy.webhook_lanes import Due
from waz_actors.store.sql import Conn, is_postgres_url

T = TypeVar("T")
CURSOR = "fanout"  # the name of the fan-out's row in webhook_cursor
_CHUNK = 500  # ids per `IN (...)`: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class Attempt:
    """One attempt's outcome, as the worker writes it (policy/webhooks.judge said what)."""

    seq: int
    status: str  # pending (retry at next_at) | delivered | failed | dead
    next_at: float | None
    code: int | None
    error: str | None
    body: bytes | None
    at: float  # wall time of the attempt
    disable_reason: str | None = None  # 410: the webhook goes disabled

    def wire(self) -> list[Any]:
        # by hand: dataclasses.astuple deep-copies every field, 5 % of the worker's CPU
        return [
            self.seq,
            self.status,
            self.next_at,
            self.code,
            self.error,
            self.body,
            self.at,
            self.disable_reason,
        ]


@dataclass
class Step:
    """What one look wrote: events fanned out, delivery rows made, webhooks disabled."""

    events: int = 0
    deliveries: int = 0
    disabled: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Fan:
    """A planned fan-out: the cursor from `after` to `upto`, and the delivery rows
    (webhook_id, event_id, lane, next_at, created_at) of the events in between."""

    after: int
    upto: int
    events: int
    rows: list[tuple[str, str, str, float, float]]


@dataclass(frozen=True)
class Write:
    """What one look of the worker writes, in one transaction.

    `fences` (a cluster): seq -> (claim key, epoch) under which the worker made that attempt
    or judged that delivery dead. A webhook's part of the write whose claim is no longer at
    that epoch is skipped (another node delivers it now); the rest is written."""

    attempts: list[Attempt] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    fan: Fan | None = None
    fences: dict[int, tuple[str, int]] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.attempts or self.dead or self.fan)

    def to_wire(self) -> list[Any]:
        fan = (
            None
            if self.fan is None
            else [self.fan.after, self.fan.upto, self.fan.events, self.fan.rows]
        )
        fences = [[seq, key, epoch] for seq, (key, epoch) in self.fences.items()]
        return [[a.wire() for a in self.attempts], self.dead, fan, fences]

    @classmethod
    def from_wire(cls, msg: list[Any]) -> Write:
        attempts, dead, fan, fences = msg
        return cls(
            [Attempt(*a) for a in attempts],
            [int(x) for x in dead],
            None
            if fan is None
            else Fan(int(fan[0]), int(fan[1]), int(fan[2]), [tuple(r) for r in fan[3]]),
            {int(seq): (str(key), int(epoch)) for seq, key, epoch in fences},
        )


@dataclass(frozen=True)
class Target:
    webhook_id: str
    tenant: str | None
    events: tuple[str, ...]
    from_seq: int


def targets(hooks: Iterable[Target], seq: int, event: str, tenant: str | None) -> list[str]:
    """The webhooks an event fans out to: enabled (the caller's list), of its tenant (or
    daemon-wide), subscribed to it, and created before it."""
    return [
        h.webhook_id
        for h in hooks
        if h.from_seq < seq
        and (h.tenant is None or h.tenant == tenant)
        and rules.matches(h.events, event)
    ]


def open_conn(target: str | Path) -> Conn:
    """A read-write connection of the worker's own: a SQLite file or a postgresql:// URL."""
    if is_postgres_url(target):
        import psycopg

        from waz_actors.store.pg import PgConn, configure

        raw = psycopg.connect(str(target), autocommit=True)
        configure(raw)
        raw.execute("SET default_transaction_read_only = off")
        return PgConn(raw)
    from waz_actors.store.connection import connect

    conn = connect(Path(target))
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


_PENDING = (
    "SELECT d.seq, d.webhook_id, d.event_id, e.event, d.lane, d.attempts, d.next_at,"
    " d.created_at, w.url, w.secret, e.body FROM webhook_deliveries d"
    " JOIN webhooks w ON w.webhook_id = d.webhook_id"
    " JOIN webhook_events e ON e.event_id = d.event_id"
)
_DUE = "d.status = 'pending' AND w.enabled = 1"


class Outbox:
    def __init__(self, conn: Conn, wall: Callable[[], float] = time.time) -> None:
        self.conn = conn
        self.wall = wall
        self.postgres = bool(getattr(conn, "postgres", False))

    @classmethod
    def open(cls, target: str | Path, wall: Callable[[], float] = time.time) -> Outbox:
        return cls(open_conn(target), wall)

    def close(self) -> None:
        self.conn.close()

    def _tx(self, fn: Callable[[Conn], T]) -> T:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            out = fn(c)
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return out

    # -- the write of one look ---------------------------------------------------------------

    def _horizon(self) -> int | None:
        """PostgreSQL: the highest event seq below which every event is committed (see the
        module's docstring). SQLite has one writer per file: no horizon needed."""
        if not self.postgres:
            return None

        def read(c: Conn) -> int:
            c.execute("LOCK TABLE webhook_events IN SHARE MODE")
            row = c.execute("SELECT coalesce(max(seq), 0) FROM webhook_events").fetchone()
            return int(row[0])

        return self._tx(read)

    def plan(self, limit: int, rows_max: int) -> Fan | None:
        """The fan-out of up to `limit` events past the cursor (stopping once `rows_max`
        delivery rows are planned); None when there is nothing to fan out."""
        horizon = self._horizon()
        c = self.conn
        cursor = self.cursor()
        sql = (
            "SELECT seq, event_id, event, tenant, instance_id, time FROM webhook_events"
            " WHERE seq > ?"
        )
        args: list[Any] = [cursor]
        if horizon is not None:
            sql += " AND seq <= ?"
            args.append(horizon)
        events = c.execute(sql + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()
        if not events:
            return None
        hooks = [
            Target(r[0], r[1], tuple(json.loads(r[2])), int(r[3]))
            for r in c.execute(
                "SELECT webhook_id, tenant, events, from_seq FROM webhooks WHERE enabled = 1"
            ).fetchall()
        ]
        rows: list[tuple[str, str, str, float, float]] = []
        last, count = cursor, 0
        for seq, event_id, event, tenant, instance_id, at in events:
            for w in targets(hooks, int(seq), event, tenant):
                # created_at: the event's time, so max_age counts from the event itself
                rows.append((w, event_id, instance_id or "", at, at))
            last, count = int(seq), count + 1
            if len(rows) >= rows_max:
                break
        return Fan(cursor, last, count, rows)

    def step(
        self, attempts: Sequence[Attempt], dead: Sequence[int], limit: int, rows_max: int
    ) -> Step:
        """Plan and write on this connection, in one transaction (tests, tools)."""
        fan = self.plan(limit, rows_max) if limit > 0 else None
        return self.write(Write(list(attempts), list(dead), fan))

    def write(self, w: Write) -> Step:
        """`w` in a transaction of this connection's own (in the daemon, its writer does it)."""
        return self._tx(lambda c: apply(c, w))

    # -- reads -------------------------------------------------------------------------------

    def cursor(self) -> int:
        row = self.conn.execute(
            "SELECT seq FROM webhook_cursor WHERE name = ?", (CURSOR,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def backlog(self) -> int:
        """Events written and not fanned out yet."""
        row = self.conn.execute(
            "SELECT count(*) FROM webhook_events WHERE seq > ?", (self.cursor(),)
        ).fetchone()
        return int(row[0])

    def load_pending(
        self,
        after_seq: int,
        limit: int,
        *,
        webhook_id: str | None = None,
        upto: int = 0,
        skip: Sequence[str] = (),
    ) -> list[Due]:
        """Pending deliveries of enabled webhooks above `after_seq`, in seq order (by the
        primary key: a look at the outbox costs what is new, not what waits); `webhook_id`:
        that webhook's only, up to `upto` (by the (webhook_id, seq) index). `skip`: webhooks
        whose rows the worker reads itself (left behind: a slow receiver's backlog), filtered
        out in the database, so a look steps over a long backlog instead of returning it."""
        if webhook_id is None:
            some = list(skip)[:_CHUNK]
            besides = f" AND d.webhook_id NOT IN ({_marks(some)})" if some else ""
            sql = f"{_PENDING} WHERE d.seq > ? AND {_DUE}{besides} ORDER BY d.seq LIMIT ?"
            args: tuple[object, ...] = (after_seq, *some, limit)
        else:
            sql = (
                f"{_PENDING} WHERE d.webhook_id = ? AND d.seq > ? AND d.seq <= ? AND {_DUE}"
                " ORDER BY d.seq LIMIT ?"
            )
            args = (webhook_id, after_seq, upto, limit)
        return [Due(**dict(r)) for r in self.conn.execute(sql, args).fetchall()]


def apply(c: Conn, w: Write) -> Step:
    """Write one look of the worker (in the caller's transaction: the daemon's writer)."""
    out = Step()
    attempts, dead = w.attempts, w.dead
    if w.fences:
        refused = _refused(c, set(w.fences.values()))
        if refused:
            attempts = [a for a in attempts if w.fences.get(a.seq) not in refused]
            dead = [seq for seq in dead if w.fences.get(seq) not in refused]
    if attempts:
        _settle(c, attempts)
        for a in attempts:
            if a.disable_reason is not None:
                row = c.execute(
                    "UPDATE webhooks SET enabled = 0, disabled_reason = ? WHERE webhook_id ="
                    " (SELECT webhook_id FROM webhook_deliveries WHERE seq = ?)"
                    " RETURNING webhook_id",
                    (a.disable_reason, a.seq),
                ).fetchone()
                if row is not None:
                    out.disabled.append(str(row[0]))
    for chunk in _chunks(list(dead)):
        c.execute(
            "UPDATE webhook_deliveries SET status = 'dead',"
            " last_error = coalesce(last_error, 'max_age passed')"
            f" WHERE status = 'pending' AND seq IN ({_marks(chunk)})",
            chunk,
        )
    fan = w.fan
    if fan is not None:
        # Compare-and-set: a plan made from a cursor that moved since writes nothing. On
        # PostgreSQL the UPDATE also locks the row: two workers fan out one after the other.
        moved = c.execute(
            "UPDATE webhook_cursor SET seq = ? WHERE name = ? AND seq = ?",
            (fan.upto, CURSOR, fan.after),
        ).rowcount
        if moved == 1:
            for i in range(0, len(fan.rows), _ROWS):
                rows = fan.rows[i : i + _ROWS]
                c.execute(_insert_rows(len(rows)), [v for row in rows for v in row])
            out.events, out.deliveries = fan.events, len(fan.rows)
    return out


def _refused(c: Conn, fences: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """The (claim key, epoch) pairs no longer current: waz_claim_fence's test (cluster/
    schema.py), one statement for all and without raising, so a refused webhook's part is
    skipped alone instead of failing the group commit it shares with the sends. The claim
    rows stay locked (FOR SHARE, in key order) until the commit: a claim cannot change hands
    between this test and the writes. SQLite: one daemon, no claims."""
    if not getattr(c, "postgres", False):
        return set()
    keys = sorted({key for key, _ in fences})
    held = {
        (str(r[0]), int(r[1]))
        for r in c.execute(
            "SELECT key, epoch FROM claims WHERE key = ANY(?) AND owner IS NOT NULL"
            " AND expires_at > now() ORDER BY key FOR SHARE",
            (keys,),
        ).fetchall()
    }
    return fences - held


def _settle(c: Conn, attempts: list[Attempt]) -> None:
    """The outcomes, set-based: the attempts of one write that ended alike (most: delivered,
    200, the same answer) are one UPDATE by their seqs, a fifth of the writer's time of one
    UPDATE each (measured). Their last_at is the latest of the group's: at most one look
    (`webhooks.poll_interval`) after the attempt itself."""
    alike: dict[tuple[Any, ...], list[Attempt]] = {}
    for a in attempts:
        alike.setdefault((a.status, a.next_at, a.code, a.error, _prefix(a.body)), []).append(a)
    for (status, next_at, code, error, body), group in alike.items():
        at = max(a.at for a in group)
        for chunk in _chunks([a.seq for a in group]):
            c.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1,"
                " next_at = coalesce(?, next_at), last_at = ?, last_code = ?, last_error = ?,"
                f" last_body = ? WHERE status = 'pending' AND seq IN ({_marks(chunk)})",
                (status, next_at, at, code, error, body, *chunk),
            )


_ROWS = 100  # delivery rows per INSERT: a third less of the writer's time than one each


@functools.lru_cache(maxsize=8)
def _insert_rows(n: int) -> str:
    return (
        "INSERT INTO webhook_deliveries (webhook_id, event_id, lane, status, next_at,"
        " created_at) VALUES " + ", ".join(["(?, ?, ?, 'pending', ?, ?)"] * n)
    )


def _prefix(body: bytes | None) -> str | None:
    return None if body is None else body[: rules.BODY_PREFIX].decode("utf-8", "replace")


def _chunks(items: list[T]) -> Iterable[list[T]]:
    return (items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK))


def _marks(items: list[Any]) -> str:
    return ", ".join("?" * len(items))


__all__ = [
    "CURSOR",
    "Attempt",
    "Fan",
    "Outbox",
    "Step",
    "Target",
    "Write",
    "apply",
    "open_conn",
    "targets",
]
