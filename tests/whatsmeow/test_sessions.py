"""The stored session of an instance, per driver: instance.create asks, instance.delete removes."""

from __future__ import annotations

from pathlib import Path

import pytest

from waz_actors.drivers import sessions
from waz_actors.drivers.whatsmeow import session_db_path


def test_whatsmeow_session_files_are_found_and_removed(tmp_path: Path):
    assert not sessions.has_session("whatsmeow", tmp_path, "w1")
    db = session_db_path(tmp_path, "w1")
    db.parent.mkdir(parents=True)
    for suffix in ("-wal", "-shm", ""):
        Path(f"{db}{suffix}").write_bytes(b"x")
    other = session_db_path(tmp_path, "w2")
    other.write_bytes(b"x")
    assert sessions.has_session("whatsmeow", str(tmp_path), "w1")
    sessions.remove_session("whatsmeow", tmp_path, "w1")
    assert not sessions.has_session("whatsmeow", tmp_path, "w1")
    assert sorted(p.name for p in db.parent.iterdir()) == ["w2.db"]  # only that instance's
    sessions.remove_session("whatsmeow", tmp_path, "w1")  # idempotent
    Path(f"{db}-wal").write_bytes(b"x")  # a leftover sidecar alone still counts
    assert sessions.has_session("whatsmeow", tmp_path, "w1")


def test_the_sim_stores_no_session(tmp_path: Path):
    assert not sessions.has_session("sim", tmp_path, "s1")
    sessions.remove_session("sim", tmp_path, "s1")
    assert list(tmp_path.iterdir()) == []


def test_unknown_drivers_and_unsafe_ids_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown driver"):
        sessions.has_session("telegram", tmp_path, "x1")
    with pytest.raises(ValueError, match="unknown driver"):
        sessions.remove_session("telegram", tmp_path, "x1")
    with pytest.raises(ValueError, match="cannot name a session file"):
        sessions.remove_session("whatsmeow", tmp_path, "../etc")
