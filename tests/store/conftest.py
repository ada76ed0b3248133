"""Fixtures for the store tests: a real store per test, opened and closed around it.

Every test that uses `make_store` or `store` runs twice: on a SQLite file and on PostgreSQL (a
fresh schema, tests/pg.py). A test about SQLite itself (its file, pragmas, backup API) says so
with `@pytest.mark.sqlite_only`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg import fresh_schema
from tests.store.store_helpers import FakeWall, instance
from waz_actors.store import Store


@pytest.fixture
def wall() -> FakeWall:
    return FakeWall()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "waz.db"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    chosen = any("backend" in m.args[0] for m in metafunc.definition.iter_markers("parametrize"))
    if "backend" in metafunc.fixturenames and not chosen:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("backend", ["sqlite"] if only else ["sqlite", "postgres"])


@pytest.fixture
def target(backend: str, db_path: Path) -> Iterator[str | Path]:
    """Where the test's store lives: the SQLite file, or a PostgreSQL URL."""
    if backend == "sqlite":
        yield db_path
    else:
        with fresh_schema() as url:
            yield url


@pytest.fixture
def make_store(target: str | Path, wall: FakeWall) -> Iterator[Callable[..., Store]]:
    opened: list[Store] = []

    def make(**kw: Any) -> Store:
        kw.setdefault("wall", wall)
        s = Store(kw.pop("path", target), **kw)
        s.open()
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    s = make_store()
    s.create_instance(instance("i1", "t1"))
    return s
