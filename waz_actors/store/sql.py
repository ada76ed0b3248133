"""The seam between the table families and a database: what they may call on a connection.

The families (instances, messages, events, ...) speak the part of Python's DB-API that sqlite3
and the PostgreSQL adapter (store/pg.py) both offer: `execute` / `executemany` with `?`
placeholders, rows readable by index and by column name, `rowcount`, and `IntegrityError` for a
broken constraint. So one family module runs on both backends; SQL that differs between them is
written the portable way instead (INSERT ... ON CONFLICT, RETURNING, CASE rather than SQLite's
two-argument max()).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from waz_actors.store.webhooks import WebhookTap
    from waz_actors.store.writer import Writer

# The one error the families catch: the PostgreSQL adapter raises sqlite3's, chained to
# psycopg's, so `except IntegrityError` reads the same on both backends.
IntegrityError = sqlite3.IntegrityError
Error = sqlite3.Error


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A connection as the families and the writer use it (sqlite3.Connection is one)."""

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Any, /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


class Database(Protocol):
    """What the families hold: the writer, and read connections (connection.Connections for a
    SQLite file, pg.PgConnections for PostgreSQL).

    `tap`: the webhook tap the families call inside their writes (store/webhooks.py); the Store
    installs it on either backend."""

    tap: WebhookTap | None

    @property
    def writer(self) -> Writer: ...

    def read(self) -> AbstractContextManager[Conn]: ...

    def snapshot(self) -> AbstractContextManager[Conn]:
        """Several reads that must agree with each other: one read transaction."""
        ...


def has_table(conn: Conn, name: str) -> bool:
    """Whether the database has the table (a dry run reads an unmigrated database as it is)."""
    if getattr(conn, "postgres", False):  # pg.PgConn; anything else speaks SQLite
        sql = "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    else:
        sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    row = conn.execute(sql, (name,)).fetchone()
    return bool(row[0])


# libpq takes the password in the URL's query string too (`?password=`, `&sslpassword=`), and
# in a key=value conninfo: the value up to the next parameter, space or fragment.
_QUERY_PASSWORD = re.compile(r"((?:^|[?&\s])(?:ssl)?password=)[^&\s#]*", re.IGNORECASE)


def redacted(target: object) -> str:
    """A store target fit to print: a URL's password hidden, in its user part
    (postgresql://user:secret@host) and in its query string (?password=secret)."""
    shown = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(target))
    return _QUERY_PASSWORD.sub(r"\1***", shown)


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


__all__ = [
    "Conn",
    "Cursor",
    "Database",
    "Error",
    "IntegrityError",
    "has_table",
    "is_postgres_url",
    "redacted",
]
