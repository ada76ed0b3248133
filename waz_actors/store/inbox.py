"""The inbox: messages the instances received, durable before anyone is told of them.

A row belongs to the instance's tenant and incarnation at the moment it arrived (owner.py), so a
deleted instance's inbox never shows in a new instance that reuses the id. WhatsApp may deliver
a message again (after a reconnect, or a driver's retry): the row is unique on
(instance, incarnation, WhatsApp id), and a second delivery finds the first row instead of
adding one. Media bytes are kept only when `[inbox] keep_media` asks (`media_data`); the
metadata always is.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from waz_actors.errors import BadRequest
from waz_actors.store.checks import need_str
from waz_actors.store.instances import not_found
from waz_actors.store.owner import OWNED, current, owned_args
from waz_actors.store.sql import Database
from waz_actors.store.writer import Tx

_COLUMNS = (
    "seq, inbox_id, instance_id, tenant, wa_id, chat, sender, text, media, sent_at, received_at,"
    " media_data IS NOT NULL AS kept"
)
PAGE_MAX = 1000


@dataclass(frozen=True, slots=True)
class InboxRecord:
    inbox_id: str
    instance_id: str
    tenant: str
    wa_id: str
    chat: str
    sender: str
    text: str | None
    media: dict[str, Any] | None
    sent_at: float  # WhatsApp's time of the message
    received_at: float  # when the daemon stored it
    kept: bool = False  # the media bytes are in the store

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InboxRecord:
        return cls(
            inbox_id=row["inbox_id"],
            instance_id=row["instance_id"],
            tenant=row["tenant"],
            wa_id=row["wa_id"],
            chat=row["chat"],
            sender=row["sender"],
            text=row["text"],
            media=json.loads(row["media"]) if row["media"] else None,
            sent_at=row["sent_at"],
            received_at=row["received_at"],
            kept=bool(row["kept"]),
        )

    @property
    def is_group(self) -> bool:
        return self.chat.endswith("@g.us")


def public_media(media: dict[str, Any] | None) -> dict[str, Any] | None:
    """Media metadata as clients see it: without `ref`, the driver's own handle on the bytes."""
    if media is None:
        return None
    return {k: v for k, v in media.items() if k != "ref"}


def inbox_event(rec: InboxRecord) -> dict[str, Any]:
    """The body of `message.<id>.in` (an `inbox.list` item, a `message.in` webhook's data):
    never the media bytes."""
    return {
        "inbox_id": rec.inbox_id,
        "instance_id": rec.instance_id,
        "wa_id": rec.wa_id,
        "chat": rec.chat,
        "from": rec.sender,
        "group": rec.is_group,
        "text": rec.text,
        "media": public_media(rec.media),
        "media_kept": rec.kept,
        "time": rec.sent_at,
        "received_at": rec.received_at,
    }


def new_inbox_id() -> str:
    return "in_" + secrets.token_hex(10)


class Inbox:
    def __init__(self, db: Database, wall: Callable[[], float]) -> None:
        self._db = db
        self._wall = wall

    def add_incoming(
        self,
        instance_id: str,
        *,
        wa_id: str,
        chat: str,
        sender: str,
        sent_at: float,
        text: str | None = None,
        media: dict[str, Any] | None = None,
        media_data: bytes | None = None,
    ) -> Future[tuple[InboxRecord, bool]]:
        """Store a received message; the Future says (the row, whether it is new). A message
        already stored (same WhatsApp id) is answered with the first row, unchanged."""
        for value, name in ((instance_id, "instance_id"), (wa_id, "wa_id"), (chat, "chat")):
            need_str(value, name)
        if media is not None and not isinstance(media, dict):
            raise BadRequest("media: expected a map", {"field": "media"})
        if media_data is not None and not isinstance(media_data, bytes):
            raise BadRequest("media_data: expected bytes", {"field": "media_data"})
        media_json = json.dumps(media, separators=(",", ":")) if media is not None else None
        received = self._wall()

        def op(tx: Tx) -> tuple[InboxRecord, bool]:
            c = tx.conn
            found = current(c, instance_id)
            if found is None:
                raise not_found(instance_id)
            incarnation, tenant = found
            cur = c.execute(
                "INSERT INTO inbox (inbox_id, instance_id, tenant, incarnation, wa_id,"
                " chat, sender, text, media, media_data, sent_at, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    new_inbox_id(),
                    instance_id,
                    tenant,
                    incarnation,
                    wa_id,
                    chat,
                    sender or chat,
                    text,
                    media_json,
                    media_data,
                    float(sent_at),
                    received,
                ),
            )
            row = c.execute(
                f"SELECT {_COLUMNS} FROM inbox WHERE instance_id = ? AND incarnation = ?"
                " AND wa_id = ?",
                (instance_id, incarnation, wa_id),
            ).fetchone()
            rec = InboxRecord.from_row(row)
            if cur.rowcount == 1 and self._db.tap is not None:
                self._db.tap.emit(tx, "message.in", tenant, instance_id, lambda: inbox_event(rec))
            return rec, cur.rowcount == 1

        return self._db.writer.submit(op)

    def keep_media(self, inbox_id: str, data: bytes) -> Future[None]:
        """Attach media bytes fetched after the message was stored (`keep_media`)."""

        def op(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE inbox SET media_data = ? WHERE inbox_id = ? AND media_data IS NULL",
                (data, inbox_id),
            )

        return self._db.writer.submit(op)

    def get_inbox(self, inbox_id: str) -> InboxRecord | None:
        """One row by id, whatever its incarnation (callers check the owner, see `owns`)."""
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM inbox WHERE inbox_id = ?", (inbox_id,))
            found = row.fetchone()
        return InboxRecord.from_row(found) if found else None

    def inbox_media(self, inbox_id: str) -> bytes | None:
        with self._db.read() as conn:
            row = conn.execute("SELECT media_data FROM inbox WHERE inbox_id = ?", (inbox_id,))
            found = row.fetchone()
        return None if found is None or found[0] is None else bytes(found[0])

    def owns(self, instance_id: str, inbox_id: str) -> bool:
        """True when the row belongs to the instance as it is now (tenant and incarnation)."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT 1 FROM inbox WHERE inbox_id = ? AND {OWNED}",
                (inbox_id, *owned_args(instance_id)),
            ).fetchone()
        return row is not None

    def list_inbox(
        self, instance_id: str, *, after: str | None = None, limit: int = 100
    ) -> list[InboxRecord]:
        """The instance's own received messages, oldest first, from just after `after`."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_MAX:
            raise BadRequest(f"limit: expected 1..{PAGE_MAX}", {"field": "limit"})
        with self._db.read() as conn:
            start = 0
            if after is not None:
                row = conn.execute("SELECT seq FROM inbox WHERE inbox_id = ?", (after,)).fetchone()
                if row is None:
                    raise BadRequest(f"after: no inbox message {after!r}", {"field": "after"})
                start = int(row[0])
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM inbox WHERE {OWNED} AND seq > ? ORDER BY seq LIMIT ?",
                (*owned_args(instance_id), start, limit),
            ).fetchall()
        return [InboxRecord.from_row(r) for r in rows]


__all__ = ["Inbox", "InboxRecord", "new_inbox_id", "public_media"]
