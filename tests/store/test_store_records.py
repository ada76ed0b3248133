"""Instances, conflicts, the event log, tokens and the online backup."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from tests.store.store_helpers import T0, FakeWall, instance, message
from waz_actors.errors import BadRequest, Exists, NotFound
from waz_actors.store import Store, TokenRecord


def test_instances_round_trip(store: Store) -> None:
    rec = instance("i2", "t2", settings={"proxy": "socks5://127.0.0.1:1", "n": [1, 2]})
    store.create_instance(rec)
    assert store.get_instance("i2") == rec
    assert [r.instance_id for r in store.list_instances()] == ["i1", "i2"]
    assert [r.instance_id for r in store.list_instances("t2")] == ["i2"]
    assert store.list_instances("nobody") == []
    assert store.get_instance("missing") is None


def test_create_instance_errors_change_nothing(store: Store) -> None:
    original = store.get_instance("i1")
    with pytest.raises(Exists):
        store.create_instance(instance("i1", "t9", driver="whatsmeow"))
    assert store.get_instance("i1") == original
    bad = [
        (instance("x", desired="maybe"), "desired"),
        (instance("x", state="asleep"), "state"),
        (instance(""), "instance_id"),
        (instance("x" * 65), "instance_id"),
        (instance("x", settings=[1]), "settings"),
        (instance("x", settings={"f": float("nan")}), "settings"),
        (instance("x", tenant=""), "tenant"),
    ]
    for rec, field in bad:
        with pytest.raises(BadRequest) as info:
            store.create_instance(rec)
        assert info.value.details["field"] == field
    assert [r.instance_id for r in store.list_instances()] == ["i1"]


def test_save_state_and_desired(store: Store) -> None:
    store.save_state("i1", "online", since=T0 + 3, jid="551199@s.whatsapp.net").result()
    store.save_state(
        "i1", "backoff", since=T0 + 9, reason="stream error", code=515, jid="551199@s.whatsapp.net"
    ).result()
    store.set_desired("i1", "stopped").result()
    got = store.get_instance("i1")
    assert got is not None
    assert (got.state, got.since, got.last_code, got.last_reason, got.jid, got.desired) == (
        "backoff",
        T0 + 9,
        515,
        "stream error",
        "551199@s.whatsapp.net",
        "stopped",
    )
    with pytest.raises(BadRequest):
        store.save_state("i1", "asleep", since=1.0)
    with pytest.raises(BadRequest):
        store.set_desired("i1", "paused")
    with pytest.raises(NotFound):
        store.save_state("nope", "online", since=1.0).result()
    with pytest.raises(NotFound):
        store.set_desired("nope", "running").result()
    assert store.get_instance("i1") == got


def test_conflicts_persist_and_count(store: Store, target: str | Path) -> None:
    store.create_instance(instance("i2"))
    for at in (T0 + 1, T0 + 5, T0 + 9):
        store.add_conflict("i1", at)
    store.add_conflict("i2", T0 + 6).result()
    assert store.conflicts_since("i1", T0 + 5) == [T0 + 5, T0 + 9]
    assert store.conflicts_count_since(T0 + 2) == 3
    with pytest.raises(NotFound):
        store.add_conflict("nope", T0).result()
    with pytest.raises(BadRequest):
        store.add_conflict("i1", "soon")  # type: ignore[arg-type]
    store.close()
    with Store(target) as again:
        assert again.conflicts_since("i1", 0) == [T0 + 1, T0 + 5, T0 + 9]


def test_event_log(store: Store, wall: FakeWall) -> None:
    for i in range(5):
        wall.t = T0 + i
        store.log_event("instance.i1.state" if i % 2 else "message.i1.status", {"n": i})
    store.flush(5)
    events = store.recent_events(limit=3)
    assert [e["body"]["n"] for e in events] == [2, 3, 4]  # the latest three, oldest first
    assert events[-1] == {
        "id": events[-1]["id"],
        "time": T0 + 4,
        "topic": "message.i1.status",
        "body": {"n": 4},
    }
    assert [e["body"]["n"] for e in store.recent_events(prefix="instance.")] == [1, 3]
    assert store.recent_events(prefix="instance.i1.state_") == []
    assert store.prune_events(older_than=T0 + 3) == 3
    assert [e["body"]["n"] for e in store.recent_events()] == [3, 4]
    with pytest.raises(BadRequest):
        store.log_event("x", {"bad": object()})
    with pytest.raises(BadRequest):
        store.log_event("", {})
    with pytest.raises(BadRequest):
        store.recent_events(limit=0)
    assert len(store.recent_events()) == 2


def test_tokens(store: Store) -> None:
    admin = TokenRecord("a" * 64, None, True, "admin.token", T0, False)
    t1 = TokenRecord("abcdef1" + "1" * 57, "t1", False, "panel", T0 + 1, False)
    t2 = TokenRecord("abcdef2" + "2" * 57, "t2", False, "script", T0 + 2, False)
    for rec in (admin, t1, t2):
        store.add_token(rec)
    with pytest.raises(Exists):
        store.add_token(TokenRecord(t1.token_hash, "t9", True, "dup", T0, False))
    with pytest.raises(BadRequest):
        store.add_token(TokenRecord("", "t9", False, "empty", T0, False))
    assert store.find_token(t1.token_hash) == t1
    assert store.find_token("f" * 64) is None
    assert store.list_tokens() == [admin, t1, t2]
    with pytest.raises(BadRequest, match="at least 6"):
        store.revoke_token("abcde")
    with pytest.raises(BadRequest, match="matches 2"):
        store.revoke_token("abcdef")
    assert store.list_tokens() == [admin, t1, t2]  # refused: nothing revoked
    assert store.revoke_token("abcdef2") is True
    found = store.find_token(t2.token_hash)
    assert found is not None and found.revoked
    assert store.revoke_token(t1.token_hash) is True
    assert store.revoke_token("cccccc") is False
    found = store.find_token(admin.token_hash)
    assert found is not None and not found.revoked and found.admin


@pytest.mark.sqlite_only
def test_backup_is_a_readable_copy_taken_while_writing(store: Store, tmp_path: Path) -> None:
    ids = [store.enqueue(message(), max_queue=10_000).result()[0].message_id for _ in range(50)]
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            store.enqueue(message(), max_queue=10_000).result(5)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        dest = tmp_path / "backups" / "copy.db"
        store.backup(dest)
    finally:
        stop.set()
        writer.join(5)
    assert not dest.with_name("copy.db.tmp").exists()
    raw = sqlite3.connect(dest)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == store.schema_version()
    raw.close()
    with Store(dest) as copy:
        assert all(copy.get_message(m) is not None for m in ids)
        assert copy.get_instance("i1") == store.get_instance("i1")
        # the copy is consistent: counters loaded from it match its rows
        assert copy.pending_count("i1") == copy.totals()["queued"] >= 50


@pytest.mark.sqlite_only
def test_backup_refuses_the_live_file(store: Store) -> None:
    with pytest.raises(BadRequest, match="live database"):
        store.backup(store.path)
    assert store.get_instance("i1") is not None
