"""A fresh PostgreSQL schema per test on the local server (127.0.0.1:5432, trust auth).

Tests that need PostgreSQL are skipped, saying why, where none answers. WAZ_PG_URL points
them at another server."""

from __future__ import annotations

import os
import secrets
import urllib.parse
from collections.abc import Iterator

import pytest

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install psycopg)")

BASE = os.environ.get("WAZ_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _reachable() -> str | None:
    try:
        with psycopg.connect(BASE, connect_timeout=2) as c:
            c.execute("SELECT 1")
        return None
    except Exception as e:
        return f"no PostgreSQL at {BASE}: {e}"


_WHY = _reachable()


def schema_url(schema: str, base: str = BASE) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={urllib.parse.quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema (dropped after the test)."""
    if _WHY:
        pytest.skip(_WHY)
    schema = "waz_t_" + secrets.token_hex(6)
    with psycopg.connect(BASE, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(BASE, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")
