"""A fresh PostgreSQL schema per test on the local server (127.0.0.1:5432, trust auth).

The server is tests/pg.py's (WAZ_TEST_PG; scripts/test-pg starts a throwaway one where none
answers); without one these tests are skipped, saying why, or fail under WAZ_TEST_PG_REQUIRED."""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.pg import need_postgres, server_url, unreachable

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (pip install psycopg)")

BASE = server_url()
_WHY = unreachable()


def schema_url(schema: str, base: str = BASE) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={urllib.parse.quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema (dropped after the test)."""
    if _WHY:
        need_postgres()
    schema = "waz_t_" + secrets.token_hex(6)
    with psycopg.connect(BASE, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        with psycopg.connect(BASE, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")
