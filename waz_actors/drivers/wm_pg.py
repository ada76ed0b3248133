"""whatsmeow sessions in the cluster's PostgreSQL: a schema per instance, moving with its lease.

In a cluster (`[cluster] enabled`, a PostgreSQL `store.url`) an instance's lease moves between
nodes; a session kept in a file under one node's state directory would stay behind, and the new
owner would have to pair the number again. So a driver host is given a `postgres://` URL instead
of a file path: neonize picks whatsmeow's PostgreSQL store (lib/pq) for a name that starts with
`postgres`, and `search_path=<schema>` in the URL (sent by lib/pq as a run-time parameter) puts
the instance's tables in its own schema.

Why one schema per instance, and why we create `whatsmeow_version` ourselves:
- neonize connects without a JID, so whatsmeow takes the container's *first* device: instances
  sharing one set of tables would all log in as the first paired number.
- whatsmeow's migration asks whether its version table exists with
  `information_schema.tables WHERE table_name = $1`, blind to the schema: once one instance's
  schema holds the table, every new schema is taken as migrated and the session fails with
  "relation whatsmeow_version does not exist". An empty version table (version 0) in the new
  schema makes whatsmeow run its full schema script there (tests/whatsmeow/test_pg_sessions.py
  proves it against the real library; re-check it when neonize is upgraded).
- `postgres://`, not `postgresql://`: with the latter the library does not create its tables.
- lib/pq's default `sslmode` is `require`, libpq's (psycopg's) `prefer`: the URL says `prefer`
  unless the store URL names one, so the hosts connect as the store does.
- neonize never closes a session's store: every `NewClient` + `connect` leaves one idle
  connection open in the host for the host's life, a failed connect included (the SQLite twin
  of this leak is one file descriptor). A reconnecting instance would fill the server's
  `max_connections`. So each session opens the store under an `application_name` of its own
  (`tagged`), and when the session is over the host terminates that name's backends (`release`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

PREFIX = "waz_wm_"
_SCHEMA = re.compile(r"^waz_wm_[a-z0-9_]{1,56}$")
_DROPPED = {"search_path", "options"}  # ours to set; the store's own schema is not the session's


def is_pg(location: str) -> bool:
    """Whether a session location (what the host gets as `db`) is a PostgreSQL URL."""
    return location.startswith("postgres://")


def schema_for(instance_id: str) -> str:
    """`waz_wm_<id folded to [a-z0-9_]>_<8 hex of the exact id>`: at most 63 bytes, a valid bare
    identifier, and distinct for ids that fold alike (`A.b` and `a_b`)."""
    if not instance_id:
        raise ValueError("empty instance id")
    folded = re.sub(r"[^a-z0-9_]", "_", instance_id.lower())[:46]
    digest = hashlib.sha256(instance_id.encode()).hexdigest()[:8]
    return f"{PREFIX}{folded}_{digest}"


def session_url(store_url: str, instance_id: str, environ: Mapping[str, str] | None = None) -> str:
    """The URL a driver host opens for `instance_id`: the store's server, database and
    credentials, `postgres://`, `search_path` set to the instance's schema.

    Hosts never get the daemon's environment (host/env.py), so what the store finds there is
    put in the URL: `PGPASSWORD` when the URL has no password, `PGSSLMODE` when it has no
    `sslmode`. The URL travels only over the pool's private socket, never on a command line.
    """
    env = os.environ if environ is None else environ
    parts = urlsplit(store_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError("whatsmeow sessions in PostgreSQL need a postgresql:// store.url")
    netloc = parts.netloc
    if parts.password is None and env.get("PGPASSWORD") and "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user}:{quote(env['PGPASSWORD'], safe='')}@{host}"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _DROPPED]
    if not any(k == "sslmode" for k, _ in query):
        query.append(("sslmode", env.get("PGSSLMODE") or "prefer"))
    query.append(("search_path", schema_for(instance_id)))
    return urlunsplit(("postgres", netloc, parts.path, urlencode(query), ""))


def new_tag() -> str:
    """An `application_name` for one session's store connections (unique, under 64 bytes)."""
    return f"waz_wm_{secrets.token_hex(8)}"


def tagged(location: str, tag: str) -> str:
    """The session URL whose connections carry `application_name=tag`."""
    parts = urlsplit(location)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    query.append(("application_name", tag))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def release(location: str, tag: str) -> int:
    """End the store connections a finished session left open (see the module doc); how many."""
    import psycopg

    url = admin_url(location)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (tag,),
        ).fetchone()
    return int(row[0]) if row else 0


def schema_of(location: str) -> str:
    """The schema named by a session URL; ValueError unless it is one of ours."""
    found = [v for k, v in parse_qsl(urlsplit(location).query) if k == "search_path"]
    if len(found) != 1 or not _SCHEMA.match(found[0]):
        raise ValueError("not a whatsmeow session URL of waz-actors")
    return found[0]


def admin_url(location: str) -> str:
    """The session URL as libpq (psycopg) takes it: without `search_path`, not a libpq key."""
    parts = urlsplit(location)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _DROPPED]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))


def masked(location: str) -> str:
    """A location fit for logs: a URL's password shown as `***` (the store's own rule)."""
    from waz_actors.store.sql import redacted

    return redacted(location)


def prepare(location: str) -> None:
    """Create the instance's schema and an empty version table (see the module doc)."""
    schema = schema_of(location)
    _run(
        location,
        f'CREATE SCHEMA IF NOT EXISTS "{schema}"',
        f'CREATE TABLE IF NOT EXISTS "{schema}".whatsmeow_version'
        " (version integer, compat integer)",
    )


def drop(location: str) -> None:
    """Remove the instance's session: its schema and every whatsmeow table in it (idempotent)."""
    _run(location, f'DROP SCHEMA IF EXISTS "{schema_of(location)}" CASCADE')


def exists(location: str) -> bool:
    import psycopg

    with psycopg.connect(admin_url(location), autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema_of(location),)
        ).fetchone()
    return row is not None


def _run(location: str, *statements: str) -> None:
    import psycopg

    # Schema names come from schema_of (checked against _SCHEMA): safe to put in the text.
    url = admin_url(location)
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn, conn.transaction():
        for sql in statements:
            conn.execute(sql.encode())


__all__ = [
    "admin_url",
    "drop",
    "exists",
    "is_pg",
    "masked",
    "new_tag",
    "prepare",
    "release",
    "schema_for",
    "schema_of",
    "session_url",
    "tagged",
]
