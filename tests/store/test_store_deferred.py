"""Deferred INSERTs (Tx.defer: the webhook tap's event rows): one executemany per statement
just before the group commit commits; they commit with their op, roll back with their op
alone when it fails, and a read of their table in the same batch (Tx.flush) sees them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.store.store_helpers import hold_writer
from waz_actors.store import Store
from waz_actors.store.writer import Tx

SQL = "INSERT INTO webhook_events (event_id, event, tenant, instance_id, time, body)" " VALUES (?, ?, ?, ?, ?, ?)"  # fmt: skip


def row(event_id: str) -> tuple[Any, ...]:
    return (event_id, "message.status", "t1", "i1", 1.0, "{}")


def ids(store: Store) -> list[str]:
    with store._db.read() as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM webhook_events ORDER BY seq")]


def test_deferred_rows_commit_in_order_and_roll_back_with_their_op_only(store: Store) -> None:
    def ok(*names: str) -> Any:
        def op(tx: Tx) -> None:
            for n in names:
                tx.defer(SQL, row(n))

        return op

    def bad(tx: Tx) -> None:
        tx.defer(SQL, row("evt_bad"))
        raise RuntimeError("this op fails after deferring a row")

    release, held = hold_writer(store)  # the three ops below land in one batch
    first, failing, last = (
        store.submit(ok("evt_1", "evt_2")),
        store.submit(bad),
        store.submit(ok("evt_3")),
    )
    release.set()
    held.result(5)
    first.result(5)
    last.result(5)
    with pytest.raises(RuntimeError):
        failing.result(5)
    assert ids(store) == ["evt_1", "evt_2", "evt_3"]


def test_a_deferred_row_that_fails_at_the_commit_fails_its_op_alone(store: Store) -> None:
    store.submit(lambda tx: tx.defer(SQL, row("evt_dup"))).result(5)
    release, held = hold_writer(store)
    good = store.submit(lambda tx: tx.defer(SQL, row("evt_new")))
    dup = store.submit(lambda tx: tx.defer(SQL, row("evt_dup")))  # the primary key refuses it
    release.set()
    held.result(5)
    good.result(5)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        dup.result(5)
    assert ids(store) == ["evt_dup", "evt_new"]


def test_a_read_in_the_same_batch_sees_the_rows_after_a_flush(store: Store) -> None:
    release, held = hold_writer(store)
    store.submit(lambda tx: tx.defer(SQL, row("evt_a")))

    def count(tx: Tx) -> int:
        tx.flush()
        return int(tx.conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0])

    seen = store.submit(count)
    release.set()
    held.result(5)
    assert seen.result(5) == 1
    assert ids(store) == ["evt_a"]
