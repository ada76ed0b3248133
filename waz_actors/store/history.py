"""Message status changes and their history rows.

Every status change writes a message_history row in the same transaction, so a message's
history always ends with its current status. These run inside a writer operation (on its `Tx`).
"""

from __future__ import annotations

from collections.abc import Sequence

from waz_actors.store.owner import OWNED, owned_args
from waz_actors.store.sql import Conn
from waz_actors.store.writer import Tx


def add_history(c: Conn, message_id: str, status: str, time: float, reason: str | None) -> None:
    c.execute(
        "INSERT INTO message_history (message_id, status, time, reason) VALUES (?, ?, ?, ?)",
        (message_id, status, time, reason),
    )


def mark(c: Conn, ids: list[str], status: str, reason: str, now: float) -> None:
    """Move every message of `ids` to `status`, each with its history row."""
    c.executemany(
        "UPDATE messages SET status = ?, updated_at = ? WHERE message_id = ?",
        [(status, now, m) for m in ids],
    )
    c.executemany(
        "INSERT INTO message_history (message_id, status, time, reason) VALUES (?, ?, ?, ?)",
        [(m, status, now, reason) for m in ids],
    )


def cancel_where(
    tx: Tx, instance_id: str, statuses: Sequence[str], reason: str, now: float
) -> list[str]:
    """Cancel the instance's own messages in `statuses` (pending ones), oldest first; their ids.

    The caller passes pending statuses only: each cancelled message frees a slot of the queue.
    """
    marks = ", ".join("?" * len(statuses))
    rows = tx.conn.execute(
        f"SELECT message_id FROM messages WHERE {OWNED} AND status IN ({marks})"
        " ORDER BY created_at, seq",
        (*owned_args(instance_id), *statuses),
    ).fetchall()
    ids = [r[0] for r in rows]
    mark(tx.conn, ids, "cancelled", reason, now)
    tx.adjust(instance_id, -len(ids))
    return ids


__all__ = ["add_history", "cancel_where", "mark"]
