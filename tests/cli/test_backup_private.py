"""Issue 11, item 15: `waz-actors backup` writes a copy only its owner can read (0600), created
so, never readable by others even for a moment, whatever the umask."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli
from tests.store.store_helpers import instance
from waz_actors.store import Store


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual umask: new files are world-readable unless created 0600
    yield
    os.umask(old)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "waz.db"
    with Store(path) as s:
        s.create_instance(instance("i1", "t1"))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_backup_copy_is_created_0600(
    db: Path, tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[tuple[str, int | None]] = []
    real = sqlite3.connect

    def spy(target: Any, *a: Any, **kw: Any) -> sqlite3.Connection:
        path = Path(str(target))
        if not str(target).startswith("file:"):  # the copy, not the source
            opened.append((path.name, mode(path) if path.exists() else None))
        return real(target, *a, **kw)

    monkeypatch.setattr(sqlite3, "connect", spy)
    dest = tmp_path / "copy.db"
    run = Cli({"WAZ_CONFIG": "", "WAZ_STATE_DIR": ""})
    assert "integrity ok" in run("backup", str(dest), "--db", str(db)).stdout
    assert mode(dest) == 0o600
    # the file SQLite wrote into already existed, private: no chmod after the fact
    assert opened == [(".copy.db.partial", 0o600)]
    # overwriting a world-readable file leaves a private one
    dest.chmod(0o644)
    run("backup", str(dest), "--db", str(db), "--force")
    assert mode(dest) == 0o600
    monkeypatch.undo()
    with sqlite3.connect(dest) as copy:
        assert copy.execute("SELECT instance_id FROM instances").fetchall() == [("i1",)]


def test_store_backup_copy_is_0600(db: Path, tmp_path: Path, open_umask: None) -> None:
    dest = tmp_path / "online" / "copy.db"
    with Store(db) as s:
        s.backup(dest)
    assert mode(dest) == 0o600
