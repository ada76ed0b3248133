"""Helpers shared by the store tests (a module with a unique name, unlike conftest)."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import Future
from typing import Any

from waz_actors.store import InstanceRecord, MessageRecord, Store
from waz_actors.types import new_message_id

T0 = 1_700_000_000.0


class FakeWall:
    """A wall clock tests move by hand (times stored are wall seconds)."""

    def __init__(self, start: float = T0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t


def instance(instance_id: str = "i1", tenant: str = "t1", **kw: Any) -> InstanceRecord:
    base: dict[str, Any] = {
        "instance_id": instance_id,
        "tenant": tenant,
        "driver": "sim",
        "settings": {"a": 1},
        "desired": "running",
        "state": "stopped",
        "since": T0,
        "jid": None,
        "last_code": None,
        "last_reason": None,
        "created_at": T0,
    }
    base.update(kw)
    return InstanceRecord(**base)


def message(instance_id: str = "i1", tenant: str = "t1", **kw: Any) -> MessageRecord:
    base: dict[str, Any] = {
        "message_id": new_message_id(),
        "instance_id": instance_id,
        "tenant": tenant,
        "to": "5511999999999",
        "text": "hello",
        "media": None,
        "status": "queued",
        "attempts": 0,
        "last_error": None,
        "wa_id": None,
        "idempotency_key": None,
        "created_at": T0,
        "updated_at": T0,
        "expires_at": None,
    }
    base.update(kw)
    return MessageRecord(**base)


def hold_writer(store: Store) -> tuple[threading.Event, Future[Any]]:
    """Park the writer inside an op so that what is submitted next lands in one batch."""
    started, release = threading.Event(), threading.Event()

    def op(tx: Any) -> None:
        started.set()
        release.wait(5)

    fut = store.submit(op)
    assert started.wait(5)
    return release, fut


class FullDisk:
    """The writer's connection, with a disk that can fill up: while `full`, every COMMIT fails
    as SQLite's does when the disk is full (SQLITE_FULL), and the transaction is rolled back.

    The one fault injected into the store; everything else is the real writer and SQLite.
    Install it with `fill_disk(store)`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.full = False
        self.refused = 0  # commits refused so far

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.full and sql == "COMMIT":
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def fill_disk(store: Store) -> FullDisk:
    """Put a FullDisk between the store's writer and its connection (not full yet)."""
    writer = store.writer
    disk = FullDisk(writer._conn)  # the seam: the writer reads its connection per batch
    writer._conn = disk  # type: ignore[assignment]
    return disk
