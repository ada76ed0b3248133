"""Opening the database, and the connections the table families share while the store is open.

One write connection creates the file (mode 0600), switches it to WAL, sets its pragmas and runs
the migrations; the group-commit `Writer` then owns it. Reads use a pool of read-only
connections, so they never wait behind a commit and never touch the writer's connection.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from waz_actors.errors import ShuttingDown
from waz_actors.store.checks import PENDING, is_int
from waz_actors.store.owner import OWNED_ROW
from waz_actors.store.readers import Readers
from waz_actors.store.schema import Migration, migrate
from waz_actors.store.sql import Conn
from waz_actors.store.writer import Writer

if TYPE_CHECKING:
    from waz_actors.store.webhooks import WebhookTap

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
BUSY_TIMEOUT = 30.0  # seconds a connection waits on a lock held by another process


def connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode (isolation_level=None): the writer and the migrations say BEGIN themselves.
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    return conn


def open_reader(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("PRAGMA query_only = ON")
    return conn


def create_private(path: Path) -> None:
    """Messages and token hashes: readable by the daemon's user only. SQLite gives the -wal and
    -shm files the same mode as the database file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def open_writer(
    path: Path, synchronous: str, migrations: Sequence[Migration]
) -> tuple[sqlite3.Connection, dict[str, int]]:
    """The write connection, migrated, and the pending counters the writer starts from."""
    create_private(path)
    conn = connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{path}: cannot switch to WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        migrate(conn, migrations)
        counters = pending_counts(conn)
    except BaseException:
        conn.close()
        raise
    return conn, counters


def pending_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Queued + sending messages per instance, as stored (each instance's own: owner.py)."""
    rows = conn.execute(
        f"SELECT m.instance_id, count(*) FROM messages m WHERE m.status IN (?, ?) AND {OWNED_ROW}"
        " GROUP BY m.instance_id",
        PENDING,
    )
    return {row[0]: row[1] for row in rows}


def read_pragmas(conn: Conn) -> dict[str, str | int]:
    """The settings really in force on `conn`, read back from SQLite."""
    return {
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "synchronous": conn.execute("PRAGMA synchronous").fetchone()[0],
        "foreign_keys": conn.execute("PRAGMA foreign_keys").fetchone()[0],
    }


class Connections:
    """The writer and the reader pool of one database file, between open() and close().

    The table families reach the database only through this, so a store that is not open (or no
    longer) refuses all of them alike, with ShuttingDown.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str,
        batch_max: int,
        readers: int,
        migrations: Sequence[Migration],
    ) -> None:
        if str(path) == ":memory:" or not str(path):
            raise ValueError("the store needs a file path (WAL does not work in memory)")
        level = synchronous.upper()
        if level not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}")
        if not is_int(batch_max) or batch_max < 1:
            raise ValueError(f"batch_max must be a positive integer, got {batch_max!r}")
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self.path = Path(path).expanduser()
        self.synchronous = level
        self.batch_max = batch_max
        self._readers_max = readers
        self._migrations = migrations
        self._writer: Writer | None = None
        self._readers: Readers | None = None
        self._write_conn: sqlite3.Connection | None = None
        # Webhook deliveries are written by the table families' own operations, in the same
        # transaction as their event (store/webhooks.py); the Store installs the tap.
        self.tap: WebhookTap | None = None

    def open(self) -> None:
        if self._writer is not None:
            raise RuntimeError("store already open")
        conn, counters = open_writer(self.path, self.synchronous, self._migrations)
        self._write_conn = conn
        self._writer = Writer(conn, batch_max=self.batch_max, counters=counters)
        self._readers = Readers(functools.partial(open_reader, self.path), self._readers_max)
        self._writer.start()

    def close(self) -> None:
        """Drain the writer (everything submitted is committed), then close every connection."""
        writer, readers, conn = self._writer, self._readers, self._write_conn
        if writer is None:
            return
        writer.close()
        if readers is not None:
            readers.close()
        if conn is not None:
            conn.close()
        self._writer = None
        self._readers = None
        self._write_conn = None

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            raise ShuttingDown("the store is not open")
        return self._writer

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        if self._readers is None:
            raise ShuttingDown("the store is not open")
        with self._readers.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that must agree with each other: one read transaction."""
        with self.read() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")


__all__ = [
    "BUSY_TIMEOUT",
    "SYNCHRONOUS_LEVELS",
    "Connections",
    "connect",
    "create_private",
    "open_reader",
    "open_writer",
    "pending_counts",
    "read_pragmas",
]
