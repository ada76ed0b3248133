"""Campaigns and their recipients (migration _V_CAMPAIGNS).

A recipient row is the durable truth of one number of one campaign: `pending` until the feeder
gives it to an instance, `queued` with the message id once the message row exists (both written
in ONE transaction, so a crash leaves either neither or both), then `sent`, `failed` or
`cancelled` as its message ends (`sync_campaign` copies final message statuses over), or
`skipped` (not on WhatsApp) / `cancelled` (campaign cancelled) without a message.

Exactly once: the message's idempotency key is `campaign_id:number` (store/messages.py keys are
per tenant), so feeding the same recipient twice (a crash between the commit and the feeder
noticing, a repeated feed) finds the earlier message instead of queueing a second. A recipient
taken back from a bad instance (its message cancelled while still queued, so it never went out)
gets the next attempt's key, `campaign_id:number:N`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from waz_actors.store.messages import (
    earlier_with_key,
    insert_queued,
    is_shared,
    owner_of,
    resync_pending,
    wake_owner,
)
from waz_actors.store.records import MessageRecord
from waz_actors.store.sql import Conn, Database
from waz_actors.store.writer import Tx

RECIPIENT_STATUSES = ("pending", "queued", "sent", "failed", "skipped", "cancelled")
CAMPAIGN_STATES = ("draft", "scheduled", "running", "paused", "done", "cancelled")

_COLS = (
    "campaign_id, tenant, name, state, instance_ids, text, media, start_at, send_window,"
    " delay_min, delay_max, check_numbers, duplicates, reason, created_at, updated_at"
)
_RCOLS = (
    "seq, campaign_id, number, vars, text, status, instance_id, message_id, attempt, checked,"
    " error, updated_at"
)


def idempotency_key(campaign_id: str, number: str, attempt: int) -> str:
    base = f"{campaign_id}:{number}"
    return base if attempt == 0 else f"{base}:{attempt}"


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    campaign_id: str
    tenant: str
    name: str
    state: str
    instance_ids: tuple[str, ...]
    text: str | None
    media: dict[str, Any] | None
    start_at: float | None  # wall time
    window: dict[str, str] | None  # {from, to, tz}
    delay_min: float  # daemon seconds between two messages of one instance, on top of pacing
    delay_max: float
    check_numbers: bool
    duplicates: int
    reason: str | None  # why it paused (a safety stop) or ended
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, r: Any) -> CampaignRecord:
        return cls(
            campaign_id=r["campaign_id"],
            tenant=r["tenant"],
            name=r["name"],
            state=r["state"],
            instance_ids=tuple(json.loads(r["instance_ids"])),
            text=r["text"],
            media=json.loads(r["media"]) if r["media"] else None,
            start_at=r["start_at"],
            window=json.loads(r["send_window"]) if r["send_window"] else None,
            delay_min=r["delay_min"],
            delay_max=r["delay_max"],
            check_numbers=bool(r["check_numbers"]),
            duplicates=r["duplicates"],
            reason=r["reason"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class RecipientRecord:
    seq: int
    campaign_id: str
    number: str
    vars: dict[str, str]
    text: str | None  # rendered when added: what is sent
    status: str
    instance_id: str | None
    message_id: str | None
    attempt: int
    checked: bool
    error: str | None
    updated_at: float

    @classmethod
    def from_row(cls, r: Any) -> RecipientRecord:
        return cls(
            seq=r["seq"],
            campaign_id=r["campaign_id"],
            number=r["number"],
            vars=json.loads(r["vars"]) if r["vars"] else {},
            text=r["text"],
            status=r["status"],
            instance_id=r["instance_id"],
            message_id=r["message_id"],
            attempt=r["attempt"],
            checked=bool(r["checked"]),
            error=r["error"],
            updated_at=r["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """One recipient given to one instance, as the message the feeder built."""

    seq: int
    message: MessageRecord


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


class Campaigns:
    def __init__(self, db: Database, wall: Callable[[], float]) -> None:
        self._db = db
        self._wall = wall
        self._shared: bool | None = None  # other daemons write these tables (PostgreSQL)

    # -- campaigns -----------------------------------------------------------------------------

    def create(self, rec: CampaignRecord) -> Future[None]:
        def op(tx: Tx) -> None:
            tx.conn.execute(
                f"INSERT INTO campaigns ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.campaign_id,
                    rec.tenant,
                    rec.name,
                    rec.state,
                    _json(list(rec.instance_ids)),
                    rec.text,
                    _json(rec.media),
                    rec.start_at,
                    _json(rec.window),
                    rec.delay_min,
                    rec.delay_max,
                    int(rec.check_numbers),
                    rec.duplicates,
                    rec.reason,
                    rec.created_at,
                    rec.updated_at,
                ),
            )

        return self._db.writer.submit(op)

    def get(self, campaign_id: str) -> CampaignRecord | None:
        with self._db.read() as c:
            row = c.execute(
                f"SELECT {_COLS} FROM campaigns WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()
        return None if row is None else CampaignRecord.from_row(row)

    def list_all(self, tenant: str | None = None, state: str | None = None) -> list[CampaignRecord]:
        sql = f"SELECT {_COLS} FROM campaigns WHERE 1 = 1"  # PostgreSQL: a boolean
        args: list[str] = []
        if tenant is not None:
            sql, args = sql + " AND tenant = ?", [*args, tenant]
        if state is not None:
            sql, args = sql + " AND state = ?", [*args, state]
        with self._db.read() as c:
            rows = c.execute(sql + " ORDER BY created_at", args).fetchall()
        return [CampaignRecord.from_row(r) for r in rows]

    def set_state(
        self,
        campaign_id: str,
        state: str,
        *,
        only_if: Sequence[str] | None = None,
        reason: str | None = None,
    ) -> Future[bool]:
        """Move the campaign to `state` (from one of `only_if`); the Future says if it moved."""
        now = self._wall()

        def op(tx: Tx) -> bool:
            sql = "UPDATE campaigns SET state = ?, reason = ?, updated_at = ? WHERE campaign_id = ?"
            args: list[Any] = [state, reason, now, campaign_id]
            if only_if is not None:
                sql += f" AND state IN ({','.join('?' * len(only_if))})"
                args += list(only_if)
            return tx.conn.execute(sql, args).rowcount == 1

        return self._db.writer.submit(op)

    # -- recipients ----------------------------------------------------------------------------

    def add_recipients(
        self, campaign_id: str, rows: Sequence[tuple[str, dict[str, str], str | None]]
    ) -> Future[tuple[int, int]]:
        """Insert (number, vars, rendered text) rows as `pending`; a number the campaign already
        has is dropped and counted. The Future says (added, duplicates)."""
        now = self._wall()
        data = [(campaign_id, n, _json(v) if v else None, t, now) for n, v, t in rows]

        def op(tx: Tx) -> tuple[int, int]:
            # rowcount of an executemany is the sum over its rows (sqlite3 and psycopg alike).
            added = tx.conn.executemany(
                "INSERT INTO campaign_recipients"
                " (campaign_id, number, vars, text, status, updated_at)"
                " VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT DO NOTHING",
                data,
            ).rowcount
            dups = len(data) - added
            tx.conn.execute(
                "UPDATE campaigns SET duplicates = duplicates + ?, updated_at = ?"
                " WHERE campaign_id = ?",
                (dups, now, campaign_id),
            )
            return added, dups

        return self._db.writer.submit(op)

    def counts(self, campaign_id: str) -> dict[str, int]:
        with self._db.read() as c:
            rows = c.execute(
                "SELECT status, count(*) FROM campaign_recipients WHERE campaign_id = ?"
                " GROUP BY status",
                (campaign_id,),
            ).fetchall()
        out = dict.fromkeys(RECIPIENT_STATUSES, 0)
        out.update({r[0]: r[1] for r in rows})
        return out

    def per_instance(self, campaign_id: str) -> dict[str, dict[str, int]]:
        with self._db.read() as c:
            rows = c.execute(
                "SELECT instance_id, status, count(*) FROM campaign_recipients"
                " WHERE campaign_id = ? AND instance_id IS NOT NULL GROUP BY instance_id, status",
                (campaign_id,),
            ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for inst, status, n in rows:
            out.setdefault(inst, {})[status] = n
        return out

    def next_pending(
        self, campaign_id: str, limit: int, *, checked_only: bool = False
    ) -> list[RecipientRecord]:
        """The feeder's next batch: pending recipients in the order they were added."""
        extra = " AND checked = 1" if checked_only else ""
        with self._db.read() as c:
            rows = c.execute(
                f"SELECT {_RCOLS} FROM campaign_recipients WHERE campaign_id = ?"
                f" AND status = 'pending'{extra} ORDER BY seq LIMIT ?",
                (campaign_id, limit),
            ).fetchall()
        return [RecipientRecord.from_row(r) for r in rows]

    def unchecked(self, campaign_id: str, limit: int) -> list[RecipientRecord]:
        with self._db.read() as c:
            rows = c.execute(
                f"SELECT {_RCOLS} FROM campaign_recipients WHERE campaign_id = ?"
                " AND status = 'pending' AND checked = 0 ORDER BY seq LIMIT ?",
                (campaign_id, limit),
            ).fetchall()
        return [RecipientRecord.from_row(r) for r in rows]

    def queued_on(self, campaign_id: str, instance_id: str | None = None) -> list[RecipientRecord]:
        sql = (
            f"SELECT {_RCOLS} FROM campaign_recipients WHERE campaign_id = ? AND status = 'queued'"
        )
        args: list[Any] = [campaign_id]
        if instance_id is not None:
            sql, args = sql + " AND instance_id = ?", [*args, instance_id]
        with self._db.read() as c:
            rows = c.execute(sql + " ORDER BY seq", args).fetchall()
        return [RecipientRecord.from_row(r) for r in rows]

    def recipients(
        self, campaign_id: str, *, status: str | None = None, after: int = 0, limit: int = 100
    ) -> list[RecipientRecord]:
        sql = f"SELECT {_RCOLS} FROM campaign_recipients WHERE campaign_id = ? AND seq > ?"
        args: list[Any] = [campaign_id, after]
        if status is not None:
            sql, args = sql + " AND status = ?", [*args, status]
        with self._db.read() as c:
            rows = c.execute(sql + " ORDER BY seq LIMIT ?", [*args, limit]).fetchall()
        return [RecipientRecord.from_row(r) for r in rows]

    def recent_outcomes(self, campaign_id: str, n: int, since: float = 0.0) -> list[str]:
        """The last `n` recipients that ended sent or failed (after `since`), newest first."""
        with self._db.read() as c:
            rows = c.execute(
                "SELECT status FROM campaign_recipients WHERE campaign_id = ?"
                " AND done_at IS NOT NULL AND done_at >= ?"
                " AND status IN ('sent', 'failed') ORDER BY done_at DESC LIMIT ?",
                (campaign_id, since, n),
            ).fetchall()
        return [r[0] for r in rows]

    def message_times(self, message_ids: Iterable[str]) -> dict[str, float]:
        """When each message last changed (for the report's time column)."""
        ids = list(message_ids)
        if not ids:
            return {}
        with self._db.read() as c:
            rows = c.execute(
                f"SELECT message_id, updated_at FROM messages WHERE message_id IN"
                f" ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    # -- the feeder's writes -------------------------------------------------------------------

    def assign(
        self,
        assignments: Sequence[Assignment],
        *,
        max_queue: int,
        fence: tuple[str, int] | None = None,
    ) -> Future[list[str]]:
        """Queue each assignment's message and mark its recipient `queued`, in one transaction.

        Per assignment the answer is "queued", "existing" (the idempotency key found an earlier
        message: the recipient is tied to it, nothing new is queued), "full" (the instance has
        no room: the recipient stays pending) or "gone" (the instance no longer exists or is
        another tenant's now).

        `fence` (clustered, PostgreSQL): the feeder's claim key and epoch; the transaction is
        refused (SQLSTATE WZ409) unless that claim is still the current one. On a shared store
        the instances' counters are read again first and each instance's owner is woken after
        the commit (it may run on another node)."""
        now = self._wall()

        def op(tx: Tx) -> list[str]:
            c = tx.conn
            out: list[str] = []
            shared = is_shared(c)
            if fence is not None and shared:  # SQLite: one daemon, no claims table
                c.execute("SELECT waz_claim_fence(?, ?)", fence).fetchall()
            if shared:
                for iid in sorted({a.message.instance_id for a in assignments}):
                    resync_pending(tx, iid)
            queued: set[str] = set()
            for a in assignments:
                m = a.message
                earlier = earlier_with_key(c, m)
                if earlier is not None:
                    self._tie(c, a.seq, earlier, now)
                    out.append("existing")
                    continue
                try:
                    incarnation = owner_of(c, m)
                except Exception:
                    out.append("gone")
                    continue
                if tx.pending(m.instance_id) >= max_queue:
                    out.append("full")
                    continue
                insert_queued(c, m, _json(m.media), incarnation)
                tx.adjust(m.instance_id, 1)
                self._tie(c, a.seq, m, now)
                queued.add(m.instance_id)
                out.append("queued")
            if shared:
                for iid in sorted(queued):
                    wake_owner(c, iid)
            return out

        return self._db.writer.submit(op, claim=None if fence is None else fence[0])

    def refresh_pending(self, instance_ids: Iterable[str]) -> Future[None]:
        """Clustered: read these instances' pending counters again from the database. Their
        owners (maybe other nodes) send and other nodes accept, so this node's counters drift;
        the feeder's room check reads them. Not shared (SQLite): nothing to do, no write."""
        ids = sorted(set(instance_ids))
        done: Future[None] = Future()
        if self._shared is None:
            with self._db.read() as c:
                self._shared = is_shared(c)
        if not self._shared or not ids:
            done.set_result(None)
            return done

        def op(tx: Tx) -> None:
            for iid in ids:
                resync_pending(tx, iid)

        return self._db.writer.submit(op)

    @staticmethod
    def _tie(c: Conn, seq: int, m: MessageRecord, now: float) -> None:
        c.execute(
            "UPDATE campaign_recipients SET status = 'queued', instance_id = ?, message_id = ?,"
            " updated_at = ? WHERE seq = ? AND status = 'pending'",
            (m.instance_id, m.message_id, now, seq),
        )

    def sync(self, campaign_id: str) -> Future[int]:
        """Copy the final status of every ended message onto its recipient; the number moved.
        A message cancelled by someone else (message.cancel, queue.purge, instance deleted)
        makes its recipient `cancelled`; the feeder's own take-backs never get here
        (`release` runs first)."""
        now = self._wall()

        def op(tx: Tx) -> int:
            cur = tx.conn.execute(
                "UPDATE campaign_recipients AS r SET"
                " status = CASE m.status WHEN 'sent' THEN 'sent' WHEN 'cancelled' THEN 'cancelled'"
                " ELSE 'failed' END,"
                " error = m.last_error, updated_at = ?, done_at = ?"
                " FROM messages AS m WHERE r.campaign_id = ? AND r.status = 'queued'"
                " AND m.message_id = r.message_id"
                " AND m.status IN ('sent', 'failed', 'expired', 'unknown', 'cancelled')",
                (now, now, campaign_id),
            )
            return cur.rowcount

        return self._db.writer.submit(op)

    def release(self, seq: int, message_id: str) -> Future[bool]:
        """Take a recipient back to `pending` after its queued message was cancelled unsent;
        the next feed uses the next attempt's idempotency key."""
        now = self._wall()

        def op(tx: Tx) -> bool:
            cur = tx.conn.execute(
                "UPDATE campaign_recipients SET status = 'pending', instance_id = NULL,"
                " message_id = NULL, attempt = attempt + 1, updated_at = ?"
                " WHERE seq = ? AND status = 'queued' AND message_id = ?",
                (now, seq, message_id),
            )
            return cur.rowcount == 1

        return self._db.writer.submit(op)

    def mark_checked(self, campaign_id: str, on: Sequence[str], off: Sequence[str]) -> Future[int]:
        """After contact.check: numbers on WhatsApp may be fed, the others are `skipped`."""
        now = self._wall()

        def op(tx: Tx) -> int:
            c = tx.conn
            c.executemany(
                "UPDATE campaign_recipients SET checked = 1 WHERE campaign_id = ? AND number = ?",
                [(campaign_id, n) for n in on],
            )
            return c.executemany(
                "UPDATE campaign_recipients SET checked = 1, status = 'skipped',"
                " error = 'not on WhatsApp', updated_at = ?"
                " WHERE campaign_id = ? AND number = ? AND status = 'pending'",
                [(now, campaign_id, n) for n in off],
            ).rowcount

        return self._db.writer.submit(op)

    def cancel_pending(self, campaign_id: str) -> Future[int]:
        now = self._wall()

        def op(tx: Tx) -> int:
            return tx.conn.execute(
                "UPDATE campaign_recipients SET status = 'cancelled', updated_at = ?"
                " WHERE campaign_id = ? AND status = 'pending'",
                (now, campaign_id),
            ).rowcount

        return self._db.writer.submit(op)


__all__ = [
    "CAMPAIGN_STATES",
    "RECIPIENT_STATUSES",
    "Assignment",
    "CampaignRecord",
    "Campaigns",
    "RecipientRecord",
    "idempotency_key",
]
