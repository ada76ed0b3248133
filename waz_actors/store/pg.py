"""The PostgreSQL backend: psycopg 3 connections behind the same seam as SQLite's (sql.py).

`PgConn` wraps one psycopg connection so the table families and the group-commit writer use it
as they use sqlite3: `?` placeholders (rewritten to psycopg's `%s` once per statement text and
cached), rows readable by index and by column name, `in_transaction`, and sqlite3's exception
classes (IntegrityError for a broken constraint, chained to psycopg's). Parameters and results
travel in PostgreSQL's binary format, and statements run often are prepared by psycopg.

`PgConnections` is what `connection.Connections` is for a SQLite file: a pool (psycopg_pool)
whose first connection the writer keeps for its group commits, the others serving reads. The
writer still batches many operations into one transaction with a SAVEPOINT per operation when
one fails: on PostgreSQL a failed statement spoils the whole transaction until it is rolled
back to a savepoint, which is exactly what the writer's retry with savepoints does.

psycopg is imported only here, and this module only when a store URL is postgresql://, so the
SQLite default does not pay for it.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from loguru import logger
from psycopg import pq
from psycopg.rows import RowMaker
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper
from psycopg_pool import ConnectionPool

from waz_actors.cluster.schema import MIGRATION_LOCK, STALE_EPOCH
from waz_actors.errors import ShuttingDown, StaleEpoch
from waz_actors.store import schema
from waz_actors.store.checks import PENDING, is_int
from waz_actors.store.owner import OWNED_ROW
from waz_actors.store.schema import Migration
from waz_actors.store.sql import Conn, has_table
from waz_actors.store.writer import Writer

if TYPE_CHECKING:
    from waz_actors.store.webhooks import WebhookTap

_ADVISORY_KEY = MIGRATION_LOCK  # "waz\0": one migrator at a time per database (the cluster's too)
_SPECIAL = re.compile(r"'[^']*'|%|\?")


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """sqlite3's paramstyle -> psycopg's: `?` -> `%s`, a literal `%` -> `%%` (never inside a
    quoted string). BEGIN IMMEDIATE (SQLite's take-the-write-lock-now) is plain BEGIN here:
    PostgreSQL locks rows, not the database."""
    if sql == "BEGIN IMMEDIATE":
        return "BEGIN"

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")

    return _SPECIAL.sub(sub, sql)


class PgRow(tuple[Any, ...]):
    """A result row like sqlite3.Row: by index and by column name, and keys()."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def pg_row(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PgRow:
        row = PgRow(values)
        row._names = names
        return row

    return make


def _as_sqlite_error(e: psycopg.Error) -> Exception:
    """sqlite3's classes, as sqlite3 raises them: IntegrityError for a broken constraint,
    OperationalError for the rest (no such table, a lost connection, ...). A write refused by
    the cluster's fence (SQLSTATE WZ409) is StaleEpoch, which callers tell from a failing
    disk: it is not to be written again."""
    if e.sqlstate == STALE_EPOCH:
        return StaleEpoch(str(e).splitlines()[0])
    if isinstance(e, psycopg.errors.IntegrityError):
        return sqlite3.IntegrityError(str(e))
    return sqlite3.OperationalError(str(e))


class PgCursor:
    """A result, as sqlite3's cursor gives it. Under a pipeline (PgConn.pipelined) the result
    may not have arrived yet: reading it syncs the pipeline first (one round trip, for every
    statement sent so far), so statements whose results nobody reads never wait for one."""

    __slots__ = ("_conn", "_cur", "_gen")

    def __init__(self, cur: psycopg.Cursor[PgRow], conn: PgConn | None = None) -> None:
        self._cur = cur
        self._conn = conn  # pipelined: sent before the sync numbered `_gen` + 1
        self._gen = conn.syncs if conn is not None else 0

    def _arrived(self) -> psycopg.Cursor[PgRow]:
        conn, self._conn = self._conn, None
        if conn is not None and conn.syncs == self._gen:
            conn.sync()
        return self._cur

    @property
    def rowcount(self) -> int:
        return self._arrived().rowcount

    def fetchone(self) -> PgRow | None:
        cur = self._arrived()
        return cur.fetchone() if cur.description else None

    def fetchall(self) -> list[PgRow]:
        cur = self._arrived()
        return cur.fetchall() if cur.description else []

    def __iter__(self) -> Iterator[PgRow]:
        return iter(self.fetchall())


class PgConn:
    """One psycopg connection, used through the seam (sql.Conn). Autocommit: like the sqlite3
    connections, the writer and the migrations say BEGIN themselves.

    `reconnect` (the writer's): a connection the server dropped (restart, failover, idle
    timeout) is replaced at the next BEGIN, so the writer outlives it; the batch that was
    running when it went failed with an error, as any failed commit does."""

    shared = True  # other daemons write the same tables (store/messages.py is_shared)
    postgres = True  # sql.has_table asks; a wrapped sqlite3 connection (tests) has no such flag

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        reconnect: Callable[[psycopg.Connection[Any]], psycopg.Connection[Any]] | None = None,
    ) -> None:
        self.raw = conn
        self._reconnect = reconnect
        self._pipe: psycopg.Pipeline | None = None
        self.syncs = 0  # pipeline syncs so far: a result sent before the last one is in

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        """Statements sent without waiting for their results (psycopg's pipeline mode): the
        writer's group commit, whose operations read few of their statements' results, pays
        a round trip per result read instead of one per statement. An error may then surface
        at a later statement than the one that caused it, or at `sync`: the caller treats any
        error as the whole transaction's (the writer rolls back and runs the batch again
        without a pipeline)."""
        if self._reconnect is not None and self.raw.broken:
            self.raw = self._reconnect(self.raw)
        with self.raw.pipeline() as pipe:
            self._pipe = pipe
            try:
                yield
            finally:
                self._pipe = None

    def sync(self) -> None:
        """Under `pipelined`: wait for every result; the first error raises here."""
        if self._pipe is not None:
            self.syncs += 1
            try:
                self._pipe.sync()
            except psycopg.Error as e:
                raise _as_sqlite_error(e) from e

    def rollback(self) -> None:
        """ROLLBACK, and forget which statements psycopg believes prepared: a pipeline cut off
        midway can leave statements recorded as prepared that the server never prepared
        ("prepared statement _pg3_N does not exist" on every later use: a writer that can no
        longer write). psycopg's own rollback() clears that cache (DEALLOCATE ALL)."""
        try:
            self.raw.rollback()
        except psycopg.Error as e:
            raise _as_sqlite_error(e) from e

    @property
    def failed(self) -> bool:
        """The transaction hit an error (PostgreSQL would answer COMMIT with a rollback)."""
        return self.raw.info.transaction_status == pq.TransactionStatus.INERROR

    @property
    def broken(self) -> bool:
        return self.raw.broken

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
        if self._pipe is not None:
            cur = self.raw.cursor(binary=True, row_factory=pg_row)
            try:
                cur.execute(translate(sql), parameters)
            except psycopg.Error as e:
                raise _as_sqlite_error(e) from e
            return PgCursor(cur, self)
        if self._reconnect is not None and sql.startswith("BEGIN") and self.raw.broken:
            self.raw = self._reconnect(self.raw)
        cur = self.raw.cursor(binary=True, row_factory=pg_row)
        try:
            cur.execute(translate(sql), parameters)  # () too: so `%%` reads as `%`
        except psycopg.OperationalError as e:
            if self._reconnect is None or not sql.startswith("BEGIN") or not self.raw.broken:
                raise _as_sqlite_error(e) from e
            # Found dead at BEGIN: nothing of this transaction was sent, so begin it again
            # on a fresh connection.
            self.raw = self._reconnect(self.raw)
            return self.execute(sql, parameters)
        except psycopg.Error as e:
            raise _as_sqlite_error(e) from e
        return PgCursor(cur)

    def executemany(self, sql: str, parameters: Any, /) -> PgCursor:
        cur = self.raw.cursor(binary=True, row_factory=pg_row)
        rows = list(parameters)
        if rows:
            try:
                cur.executemany(translate(sql), rows)
            except psycopg.Error as e:
                raise _as_sqlite_error(e) from e
        return PgCursor(cur, self if self._pipe is not None else None)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def configure(conn: psycopg.Connection[Any]) -> None:
    """Every pooled connection: autocommit (BEGIN is said explicitly), read-only unless it is
    the writer's (like SQLite's query_only readers), and Python bools stored as the 0/1
    integers the schema has (SQLite does that by itself)."""
    conn.autocommit = True
    conn.execute("SET default_transaction_read_only = on")
    conn.adapters.register_dumper(bool, Int8Dumper)
    conn.adapters.register_dumper(bool, Int8BinaryDumper)


# The writer's transactions last milliseconds. One left open by a writer that can no longer
# talk to the server (a partition: the server's socket stays up, nothing comes) would keep its
# locks for as long as the server believes the session, hours with default TCP settings: the
# lease rows it locked FOR SHARE (the epoch fence) could then not be taken over by any other node
# (their acquisition skips locked rows). The server ends such a session after this long.
WRITER_IDLE_IN_TRANSACTION_MS = 5000

# A pooled connection used this recently is handed out without the check's round trip (an empty
# query): a server drop in that window fails the read that uses it, as a drop during the read
# would. Checking every checkout doubled the round trips of every read (an instance start does
# several).
CHECK_IDLE_AFTER = 1.0
# raw connection -> the monotonic time it went back to the pool
_USED: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = weakref.WeakKeyDictionary()


def check_if_idle(conn: psycopg.Connection[Any]) -> None:
    """The pool's check: `ConnectionPool.check_connection` unless used a moment ago."""
    if conn.broken or conn.closed:
        raise psycopg.OperationalError("connection is broken")
    used = _USED.get(conn)
    if used is None or time.monotonic() - used > CHECK_IDLE_AFTER:
        ConnectionPool.check_connection(conn)


def _writable(pool: ConnectionPool[psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
    """A pool connection for the writer (it stays out of the pool until close)."""
    raw = pool.getconn(timeout=30.0)
    raw.execute("SET default_transaction_read_only = off")
    raw.execute(f"SET idle_in_transaction_session_timeout = {WRITER_IDLE_IN_TRANSACTION_MS}")
    return raw


def schema_version(conn: Conn) -> int:
    if not has_table(conn, "schema_version"):
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row is not None else 0


def _begin_locked(conn: Conn) -> None:
    """A migration's transaction: under an advisory lock, so two daemons starting at once do
    not both migrate; the version table is made by the first."""
    conn.execute("BEGIN")
    conn.execute("SELECT pg_advisory_xact_lock(?)", (_ADVISORY_KEY,))
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    conn.execute(
        "INSERT INTO schema_version (version) SELECT 0"
        " WHERE NOT EXISTS (SELECT 1 FROM schema_version)"
    )


def _set_version(conn: Conn, version: int) -> None:
    conn.execute("UPDATE schema_version SET version = ?", (version,))


def migrate(conn: PgConn, migrations: Sequence[Migration]) -> list[int]:
    """schema.migrate, PostgreSQL's way: each step in its own transaction with the bump of
    the one row of `schema_version`."""
    return schema.migrate(
        conn, migrations, begin=_begin_locked, version=schema_version, set_version=_set_version
    )


def pending_counts(conn: PgConn) -> dict[str, int]:
    rows = conn.execute(
        f"SELECT m.instance_id, count(*) FROM messages m WHERE m.status IN (?, ?) AND {OWNED_ROW}"
        " GROUP BY m.instance_id",
        PENDING,
    )
    return {row[0]: int(row[1]) for row in rows}


class PgConnections:
    """connection.Connections for a PostgreSQL database: the writer and the reads, between
    open() and close(). `url` is a libpq connection URI (postgresql://user@host:port/db)."""

    def __init__(
        self, url: str, *, batch_max: int, readers: int, migrations: Sequence[Migration]
    ) -> None:
        if not is_int(batch_max) or batch_max < 1:
            raise ValueError(f"batch_max must be a positive integer, got {batch_max!r}")
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self.url = url
        self.batch_max = batch_max
        self._readers_max = readers
        self._migrations = migrations
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._writer: Writer | None = None
        self._write_conn: PgConn | None = None
        # The webhook tap, as on SQLite's Connections (store/webhooks.py); the Store installs it.
        self.tap: WebhookTap | None = None

    def open(self) -> None:
        if self._writer is not None:
            raise RuntimeError("store already open")
        # The writer's connection stays out of the pool for good: readers + 1 in all.
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._readers_max + 1,
            configure=configure,
            check=check_if_idle,  # a dropped connection is not handed out
            open=False,
            name="waz-store",
        )
        pool.open(wait=True, timeout=30.0)
        try:
            conn = PgConn(_writable(pool), self._reconnect)
            migrate(conn, self._migrations)
            counters = pending_counts(conn)
        except BaseException:
            pool.close()
            raise
        self._pool, self._write_conn = pool, conn
        self._writer = Writer(conn, batch_max=self.batch_max, counters=counters)
        self._writer.start()

    def _reconnect(self, dead: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
        """On the writer thread: a fresh connection for the writer, and the pending counters
        read again from the database (a commit cut off by the drop may or may not have
        happened: only the database knows)."""
        pool, writer = self._pool, self._writer
        if pool is None or writer is None:
            raise ShuttingDown("the store is not open")
        pool.putconn(dead)  # the pool throws a broken connection away
        raw = _writable(pool)
        fresh = pending_counts(PgConn(raw))
        counters = writer.counters
        for key in [k for k in counters if k not in fresh]:
            del counters[key]
        counters.update(fresh)
        logger.warning("store: PostgreSQL connection lost; the writer reconnected")
        return raw

    def close(self) -> None:
        """Drain the writer (everything submitted is committed), then close every connection."""
        writer, pool, conn = self._writer, self._pool, self._write_conn
        if writer is None:
            return
        writer.close()
        if pool is not None:
            if conn is not None:
                pool.putconn(conn.raw)
            pool.close()
        self._writer = None
        self._pool = None
        self._write_conn = None

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            raise ShuttingDown("the store is not open")
        return self._writer

    @contextlib.contextmanager
    def read(self) -> Iterator[PgConn]:
        pool = self._pool
        if pool is None:
            raise ShuttingDown("the store is not open")
        with pool.connection(timeout=30.0) as raw:
            try:
                yield PgConn(raw)
            finally:
                if raw.broken:
                    _USED.pop(raw, None)
                else:
                    _USED[raw] = time.monotonic()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[PgConn]:
        """Several reads that must agree with each other: one REPEATABLE READ transaction (the
        default READ COMMITTED would give each statement its own snapshot)."""
        with self.read() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def schema_version(self) -> int:
        with self.read() as conn:
            return schema_version(conn)

    def settings(self) -> dict[str, str | int]:
        """What commits promise on this server (read back, like SQLite's pragmas)."""
        with self.read() as conn:
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings"
                " WHERE name IN ('synchronous_commit', 'fsync', 'server_version')"
            ).fetchall()
        return {"backend": "postgresql", **{r[0]: r[1] for r in rows}}


__all__ = ["PgConn", "PgConnections", "PgRow", "migrate", "pending_counts", "translate"]
