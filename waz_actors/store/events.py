"""Conflicts (when another device took an instance's session) and the event log."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from waz_actors.store.checks import need_map, need_number, need_positive, need_str, to_json
from waz_actors.store.instances import not_found
from waz_actors.store.sql import Database, IntegrityError
from waz_actors.store.webhooks import emit_logged
from waz_actors.store.writer import Tx


class Conflicts:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_conflict(self, instance_id: str, at: float) -> Future[None]:
        need_number(at, "at")

        def op(tx: Tx) -> None:
            try:
                tx.conn.execute(
                    "INSERT INTO conflicts (instance_id, at) VALUES (?, ?)", (instance_id, at)
                )
            except IntegrityError:  # the foreign key: no such instance
                raise not_found(instance_id) from None

        # The owner's session met another device: fenced on a cluster, so a stale owner
        # replaced by the new one does not record a conflict that would throttle the new one.
        return self._db.writer.submit(op, owner=instance_id)

    def conflicts_since(self, instance_id: str, since: float) -> list[float]:
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT at FROM conflicts WHERE instance_id = ? AND at >= ? ORDER BY at",
                (instance_id, since),
            ).fetchall()
        return [r[0] for r in rows]

    def all_conflicts_since(self, since: float) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT instance_id, at FROM conflicts WHERE at >= ? ORDER BY at", (since,)
            ).fetchall()
        for instance_id, at in rows:
            out.setdefault(instance_id, []).append(at)
        return out

    def conflicts_count_since(self, since: float) -> int:
        with self._db.read() as conn:
            row = conn.execute("SELECT count(*) FROM conflicts WHERE at >= ?", (since,)).fetchone()
        return int(row[0])


class EventLog:
    def __init__(self, db: Database, wall: Callable[[], float]) -> None:
        self._db = db
        self._wall = wall

    def log_event(
        self, topic: str, body: dict[str, Any], *, owner: str | None = None
    ) -> Future[None]:
        """`owner`: the instance whose owner logs this (its state changes): fenced."""
        need_str(topic, "topic")
        need_map(body, "body")
        text = to_json(body, "body")
        now = self._wall()

        def op(tx: Tx) -> None:
            tx.conn.execute(
                "INSERT INTO events (time, topic, body) VALUES (?, ?, ?)", (now, topic, text)
            )
            if self._db.tap is not None:
                emit_logged(self._db.tap, tx, topic, body)

        return self._db.writer.submit(op, owner=owner)

    def recent_events(self, limit: int = 100, prefix: str = "") -> list[dict[str, Any]]:
        need_positive(limit, "limit")
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id, time, topic, body FROM events WHERE substr(topic, 1, ?) = ?"
                " ORDER BY id DESC LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()
        return [
            {"id": r["id"], "time": r["time"], "topic": r["topic"], "body": json.loads(r["body"])}
            for r in reversed(rows)
        ]

    def prune_events(self, older_than: float) -> int:
        need_number(older_than, "older_than")
        return self._db.writer.call(
            lambda tx: tx.conn.execute("DELETE FROM events WHERE time < ?", (older_than,)).rowcount
        )


__all__ = ["Conflicts", "EventLog"]
