"""Receipts found again by WhatsApp's id, the possible-duplicate mark, and status `unknown`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.store.store_helpers import T0, instance, message
from waz_actors.errors import BadRequest, InvalidState
from waz_actors.store import Store
from waz_actors.store.schema import _V_RECEIPTS, MIGRATIONS


def sent(store: Store, wa_id: str) -> str:
    rec, _ = store.enqueue(message(), max_queue=10).result()
    store.update_message(rec.message_id, "sending").result()
    store.update_message(rec.message_id, "sent", wa_id=wa_id).result()
    return rec.message_id


def test_receipts_by_wa_id_survive_a_reopen(db_path: Path) -> None:
    with Store(db_path) as s:
        s.create_instance(instance("i1"))
        mid = sent(s, "WA-1")
    with Store(db_path) as s:  # a restart: nothing of the first run is in memory
        assert s.message_by_wa_id("i1", "WA-1") == mid
        assert s.message_by_wa_id("i2", "WA-1") is None  # another instance's id space
        assert s.message_by_wa_id("i1", "WA-2") is None
        assert s.record_receipt(mid, "delivered", T0 + 5).result() is True
        assert s.record_receipt(mid, "delivered", T0 + 9).result() is False  # first one counts
        rec = s.get_message(mid)
        assert (rec.delivered_at, rec.read_at) == (T0 + 5, None)
        assert s.record_receipt(mid, "read", T0 + 7).result() is True
        rec = s.get_message(mid)
        assert (rec.delivered_at, rec.read_at) == (T0 + 5, T0 + 7)


def test_read_implies_delivered(store: Store) -> None:
    mid = sent(store, "WA-9")
    store.record_receipt(mid, "read", T0 + 3).result()
    rec = store.get_message(mid)
    assert rec.delivered_at == rec.read_at == T0 + 3
    with pytest.raises(BadRequest):
        store.record_receipt(mid, "played", T0)


def test_possible_duplicate_only_turns_on_and_unknown_is_final(store: Store) -> None:
    rec, _ = store.enqueue(message(), max_queue=10).result()
    mid = rec.message_id
    store.update_message(mid, "sending", possible_duplicate=True, outcome_unknown=True).result()
    store.update_message(mid, "queued", possible_duplicate=False).result()
    got = store.get_message(mid)
    assert got.possible_duplicate is True and got.outcome_unknown is True
    assert store.update_message(mid, "unknown", outcome_unknown=False).result()
    assert store.pending_count("i1") == 0
    with pytest.raises(InvalidState):
        store.update_message(mid, "queued").result()
    assert store.totals()["unknown"] == 1


def test_migration_lets_an_old_database_store_unknown(db_path: Path) -> None:
    """A database made by the previous schema gets the columns and accepts the new status."""
    with Store(db_path, migrations=MIGRATIONS[: MIGRATIONS.index(_V_RECEIPTS)]) as s:
        s.create_instance(instance("i1"))
        rec, _ = s.enqueue(message(), max_queue=10).result()
    raw = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE messages SET status = 'unknown'")
    raw.close()
    with Store(db_path) as s:
        assert s.update_message(rec.message_id, "unknown").result()
        got = s.get_message(rec.message_id)
        assert got.status == "unknown" and got.delivered_at is None
        assert got.possible_duplicate is False
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE messages SET status = 'bogus'")
    raw.close()
