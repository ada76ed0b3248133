"""Fixtures for the store tests: a real SQLite file per test, opened and closed around it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.store.store_helpers import FakeWall, instance
from waz_actors.store import Store


@pytest.fixture
def wall() -> FakeWall:
    return FakeWall()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "waz.db"


@pytest.fixture
def make_store(db_path: Path, wall: FakeWall) -> Iterator[Callable[..., Store]]:
    opened: list[Store] = []

    def make(**kw: Any) -> Store:
        kw.setdefault("wall", wall)
        s = Store(kw.pop("path", db_path), **kw)
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
