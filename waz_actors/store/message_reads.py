"""Reading the outbox: single messages, their history, pages, queue figures and totals.

Reads by instance see only the instance's own messages (owner.py): a message of a deleted
instance whose id was reused, by this tenant or another, is never listed or counted here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from waz_actors.errors import BadRequest
from waz_actors.store.checks import PENDING, STATUSES, is_int, need_status
from waz_actors.store.owner import OWNED, owned_args
from waz_actors.store.records import MessageRecord
from waz_actors.store.sql import Database

MSG_COLUMNS = (
    "message_id, instance_id, tenant, recipient, text, media, status, attempts, last_error,"
    " wa_id, idempotency_key, created_at, updated_at, expires_at"
)
# Read too, never written on insert (they start NULL / 0; media_info is written by the send path).
LATER_COLUMNS = "delivered_at, read_at, possible_duplicate, outcome_unknown, media_info"
SELECT_MSG = f"SELECT {MSG_COLUMNS}, {LATER_COLUMNS} FROM messages"
PAGE_MAX = 1000


class MessageReads:
    def __init__(self, db: Database, wall: Callable[[], float]) -> None:
        self._db = db
        self._wall = wall

    def get_message(self, message_id: str) -> MessageRecord | None:
        with self._db.read() as conn:
            row = conn.execute(f"{SELECT_MSG} WHERE message_id = ?", (message_id,)).fetchone()
        return MessageRecord.from_row(row) if row else None

    def message_by_wa_id(self, instance_id: str, wa_id: str) -> str | None:
        """Our message id for WhatsApp's id on this instance (receipts after a restart)."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT message_id FROM messages WHERE instance_id = ? AND wa_id = ?"
                " ORDER BY seq DESC LIMIT 1",
                (instance_id, wa_id),
            ).fetchone()
        return None if row is None else str(row[0])

    def history(self, message_id: str) -> list[dict[str, Any]]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT status, time, reason FROM message_history WHERE message_id = ? ORDER BY id",
                (message_id,),
            ).fetchall()
        return [{"status": r["status"], "time": r["time"], "reason": r["reason"]} for r in rows]

    def pending_messages(
        self, instance_id: str, message_ids: list[str] | None = None
    ) -> list[MessageRecord]:
        only, ids = "", list[str]()
        if message_ids is not None:
            if not message_ids:
                return []
            only, ids = f" AND message_id IN ({', '.join('?' * len(message_ids))})", message_ids
        with self._db.read() as conn:
            rows = conn.execute(
                f"{SELECT_MSG} WHERE {OWNED} AND status IN (?, ?){only} ORDER BY created_at, seq",
                (*owned_args(instance_id), *PENDING, *ids),
            ).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    def pending_count(self, instance_id: str) -> int:
        # The writer's committed counter: no query, so callers may ask on every event.
        return self._db.writer.counters.get(instance_id, 0)

    def list_messages(
        self,
        instance_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[MessageRecord]:
        if status is not None:
            need_status(status)
        if not is_int(limit) or not 1 <= limit <= PAGE_MAX:
            raise BadRequest(f"limit: expected 1 to {PAGE_MAX}, got {limit!r}", {"field": "limit"})
        with self._db.read() as conn:
            start = 0
            if after is not None:
                # Keyset pagination on seq: a page does not shift when messages are added.
                row = conn.execute(
                    f"SELECT seq FROM messages WHERE message_id = ? AND {OWNED}",
                    (after, *owned_args(instance_id)),
                ).fetchone()
                if row is None:
                    raise BadRequest(
                        f"after: no message {after!r} in this instance", {"field": "after"}
                    )
                start = row[0]
            sql = f"{SELECT_MSG} WHERE {OWNED} AND seq > ?"
            args: list[Any] = [*owned_args(instance_id), start]
            if status is not None:
                sql += " AND status = ?"
                args.append(status)
            sql += " ORDER BY seq LIMIT ?"
            args.append(limit)
            rows = conn.execute(sql, args).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    def queue_stats(self, instance_id: str, now_wall: float | None = None) -> dict[str, Any]:
        now = self._wall() if now_wall is None else now_wall
        with self._db.snapshot() as conn:
            counts = dict(
                conn.execute(
                    f"SELECT status, count(*) FROM messages WHERE {OWNED} GROUP BY status",
                    owned_args(instance_id),
                ).fetchall()
            )
            oldest = conn.execute(
                f"SELECT min(created_at) FROM messages WHERE {OWNED} AND status IN (?, ?)",
                (*owned_args(instance_id), *PENDING),
            ).fetchone()[0]
        return {
            "depth": counts.get("queued", 0),
            "in_flight": counts.get("sending", 0),
            "oldest_age": None if oldest is None else max(0.0, now - oldest),
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "cancelled": counts.get("cancelled", 0),
            "expired": counts.get("expired", 0),
        }

    def totals(self) -> dict[str, int]:
        with self._db.read() as conn:
            counts = dict(
                conn.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
            )
        return {s: counts.get(s, 0) for s in STATUSES}


__all__ = ["MSG_COLUMNS", "PAGE_MAX", "SELECT_MSG", "MessageReads"]
