"""Copy whatsmeow sessions from a single daemon's files into a cluster's PostgreSQL.

A single daemon keeps each session in `<state_dir>/whatsmeow/<id>.db`; a cluster node opens the
instance's schema instead (drivers/wm_pg.py). Moving to a cluster without pairing every number
again means copying each file's rows into its instance's schema. The library creates the tables
(its own migration, run by a connect that fails at once on a loopback port that refuses; nothing
leaves the machine), then the rows are copied table by table in one transaction, the device
first (the other tables refer to it), each value cast to its PostgreSQL column type.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from waz_actors.drivers import wm_pg

_MIGRATE = """
import sys
from neonize._binder import ProxySettings
from neonize.client import NewClient
try:
    NewClient(sys.argv[1], uuid="import.1").connect(ProxySettings(proxy_address=sys.argv[2]))
except Exception as e:
    print(e, file=sys.stderr)
"""


def migrate(location: str, timeout: float = 120.0) -> int:
    """Create the instance's schema and let the library create its tables in it; the version
    whatsmeow reached. RuntimeError when it created none."""
    wm_pg.prepare(location)
    with socket.socket() as refusing:  # bound, never listening: a connect is refused at once
        refusing.bind(("127.0.0.1", 0))
        proxy = f"socks5://127.0.0.1:{refusing.getsockname()[1]}"
        out = subprocess.run(
            [sys.executable, "-c", _MIGRATE, location, proxy],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    version = _pg_version(location)
    if version <= 0:
        tail = wm_pg.masked(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "")
        raise RuntimeError(f"whatsmeow did not create its tables: {tail}")
    return version


def import_file(db_file: Path, location: str) -> dict[str, int]:
    """Copy one session file into the instance's schema; rows copied per table.

    ValueError when the schema already holds a device (never overwritten) or the file's
    whatsmeow version differs from the library's (open it once with this version first).
    """
    import psycopg

    src = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        (src_version,) = src.execute("SELECT version FROM whatsmeow_version").fetchone()
        schema = wm_pg.schema_of(location)
        if wm_pg.exists(location) and _pg_version(location) > 0 and _devices(location):
            raise ValueError(f"schema {schema} already holds a session: not overwritten")
        version = migrate(location)
        if int(src_version) != version:
            raise ValueError(
                f"{db_file} is at whatsmeow version {src_version}, the library at {version}: "
                "start the single daemon once with this version to migrate the file"
            )
        tables = [
            r[0]
            for r in src.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name LIKE 'whatsmeow_%' AND name != 'whatsmeow_version'"
                " ORDER BY name != 'whatsmeow_device', name"
            )
        ]
        counts: dict[str, int] = {}
        with (
            psycopg.connect(wm_pg.admin_url(location), connect_timeout=10) as conn,
            conn.transaction(),
        ):
            types = _column_types(conn, schema)
            for table in tables:
                counts[table] = _copy(src, conn, schema, table, types.get(table, {}))
        return counts
    finally:
        src.close()


def _copy(
    src: sqlite3.Connection, conn: Any, schema: str, table: str, types: dict[str, str]
) -> int:
    have = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
    cols = [c for c in have if c in types]
    if not cols:
        return 0
    quoted = ", ".join(f'"{c}"' for c in cols)
    rows = [
        tuple(_value(v, types[c]) for c, v in zip(cols, row, strict=True))
        for row in src.execute(f'SELECT {quoted} FROM "{table}"')
    ]
    if rows:
        marks = ", ".join(f"%s::{types[c]}" for c in cols)
        sql = f'INSERT INTO "{schema}"."{table}" ({quoted}) VALUES ({marks})'
        with conn.cursor() as cur:
            cur.executemany(sql.encode(), rows)
    return len(rows)


def _value(v: object, pg_type: str) -> object:
    """SQLite keeps booleans as integers and may hand back text for a BLOB column."""
    if v is None:
        return None
    if pg_type == "bool":
        return bool(v)
    if pg_type == "bytea" and isinstance(v, str):
        return v.encode()
    if pg_type == "uuid" and isinstance(v, bytes) and len(v) == 16:
        import uuid

        return str(uuid.UUID(bytes=v))
    return v


def _column_types(conn: Any, schema: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    rows = conn.execute(
        "SELECT table_name, column_name, udt_name FROM information_schema.columns"
        " WHERE table_schema = %s",
        (schema,),
    ).fetchall()
    for table, column, udt in rows:
        out.setdefault(str(table), {})[str(column)] = str(udt)
    return out


def _pg_version(location: str) -> int:
    import psycopg

    schema = wm_pg.schema_of(location)
    with psycopg.connect(wm_pg.admin_url(location), autocommit=True, connect_timeout=10) as c:
        row = c.execute(f'SELECT max(version) FROM "{schema}".whatsmeow_version'.encode())
        found = row.fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def _devices(location: str) -> int:
    import psycopg

    schema = wm_pg.schema_of(location)
    with psycopg.connect(wm_pg.admin_url(location), autocommit=True, connect_timeout=10) as c:
        found = c.execute(f'SELECT count(*) FROM "{schema}".whatsmeow_device'.encode()).fetchone()
    return int(found[0]) if found else 0


__all__ = ["import_file", "migrate"]
