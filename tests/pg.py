"""PostgreSQL for the tests: the server in WAZ_TEST_PG, a fresh schema per test.

A schema per test (CREATE SCHEMA, search_path in the URL, DROP SCHEMA ... CASCADE after) is much
faster than a database per test and just as isolated: the store creates every table of its own,
schema_version included, in the first schema of its search_path. scripts/test starts a throwaway
server when none is reachable and sets WAZ_TEST_PG_REQUIRED, so a missing server fails there;
elsewhere the PostgreSQL variants are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("WAZ_TEST_PG") or DEFAULT_URL


@functools.cache
def unreachable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        import psycopg
    except ImportError as e:
        return f"psycopg is not installed: {e}"
    try:
        with psycopg.connect(server_url(), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        return f"PostgreSQL at {server_url()} is not reachable: {e}"
    return None


def need_postgres() -> None:
    reason = unreachable()
    if reason is None:
        return
    if os.environ.get("WAZ_TEST_PG_REQUIRED"):
        pytest.fail(reason)
    pytest.skip(reason)


def with_search_path(url: str, schema: str) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def store_url(backend: str) -> Iterator[str]:
    """store.url for a daemon on `backend`: empty (SQLite in the state directory) or a fresh
    PostgreSQL schema."""
    if backend == "sqlite":
        yield ""
    else:
        with fresh_schema() as url:
            yield url


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL whose tables land in a new, empty schema, dropped afterwards."""
    need_postgres()
    import psycopg

    schema = f"waz_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(server_url(), schema)
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
