"""Pragmas really in force, migrations, reopening, and refusals at open."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.store.store_helpers import instance, message
from waz_actors.store import SchemaTooNew, Store
from waz_actors.store.schema import MIGRATIONS


@pytest.mark.sqlite_only
def test_wal_full_and_foreign_keys_are_in_force(make_store: Callable[..., Store]) -> None:
    s = make_store()
    assert s.pragmas() == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}
    # WAL is a property of the file: a fresh connection sees it too
    raw = sqlite3.connect(s.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


@pytest.mark.sqlite_only
def test_synchronous_normal_is_honoured(make_store: Callable[..., Store]) -> None:
    s = make_store(synchronous="normal")
    assert s.pragmas()["synchronous"] == 1


@pytest.mark.sqlite_only
def test_user_version_after_first_open(make_store: Callable[..., Store]) -> None:
    s = make_store()
    assert s.schema_version() == len(MIGRATIONS)  # whatever migrations other features add
    tables = {
        r[0]
        for r in sqlite3.connect(s.path).execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"instances", "messages", "message_history", "conflicts", "events", "tokens"} <= tables


@pytest.mark.sqlite_only
def test_database_file_is_private(make_store: Callable[..., Store]) -> None:
    s = make_store()
    assert stat.S_IMODE(s.path.stat().st_mode) == 0o600


def test_reopen_keeps_data_and_runs_no_migration_again(db_path: Path, wall: object) -> None:
    runs: list[int] = []

    def v3(conn: sqlite3.Connection) -> None:
        runs.append(3)
        conn.execute("ALTER TABLE instances ADD COLUMN note TEXT")

    with Store(db_path, wall=wall) as s:  # type: ignore[arg-type]
        s.create_instance(instance("i1"))
        rec, _ = s.enqueue(message("i1", text="kept"), max_queue=10).result()
        assert s.schema_version() == len(MIGRATIONS)

    # a later migration is applied on the next open, exactly once, and keeps the data
    for _ in range(2):
        with Store(db_path, wall=wall, migrations=(*MIGRATIONS, v3)) as s:  # type: ignore[arg-type]
            assert s.schema_version() == len(MIGRATIONS) + 1
            assert s.get_instance("i1") is not None
            got = s.get_message(rec.message_id)
            assert got is not None and got.text == "kept"
            assert s.pending_count("i1") == 1  # counters are reloaded at open
    assert runs == [3]  # the extra step ran once


def test_failed_migration_leaves_old_version(db_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x)")
        raise RuntimeError("boom")

    with Store(db_path):
        pass
    with pytest.raises(RuntimeError, match="boom"):
        Store(db_path, migrations=(*MIGRATIONS, broken)).open()
    with Store(db_path) as s:
        assert s.schema_version() == len(MIGRATIONS)
    raw = sqlite3.connect(db_path)
    names = [r[0] for r in raw.execute("SELECT name FROM sqlite_master")]
    raw.close()
    assert "half" not in names


def test_newer_schema_is_refused_untouched(db_path: Path) -> None:
    with Store(db_path):
        pass
    newer = len(MIGRATIONS) + 1  # a version this program does not know
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {newer}")
    raw.close()
    with pytest.raises(SchemaTooNew, match=str(newer)):
        Store(db_path).open()
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == newer
    raw.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"synchronous": "SOMETIMES"}, "synchronous"),
        ({"batch_max": 0}, "batch_max"),
        ({"batch_max": True}, "batch_max"),
        ({"readers": 0}, "readers"),
    ],
)
def test_bad_constructor_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Store(tmp_path / "x.db", **kwargs)
    assert not (tmp_path / "x.db").exists()


def test_memory_path_refused() -> None:
    with pytest.raises(ValueError, match="file path"):
        Store(":memory:")


def test_open_twice_refused_and_close_is_idempotent(make_store: Callable[..., Store]) -> None:
    s = make_store()
    with pytest.raises(RuntimeError, match="already open"):
        s.open()
    s.close()
    s.close()


def test_media_migration_adds_media_info_to_an_older_database(db_path: Path) -> None:
    from waz_actors.store.schema import _V_MEDIA, migrate

    db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db_path, isolation_level=None)
    before = MIGRATIONS[: MIGRATIONS.index(_V_MEDIA)]
    migrate(conn, before)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
    assert "media_info" not in cols
    migrate(conn, MIGRATIONS)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
    assert "media_info" in cols
    conn.close()
