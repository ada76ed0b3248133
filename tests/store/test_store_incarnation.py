"""A reused instance id never sees the previous owner's messages (issue 11, item 1).

Tenant A creates `shop-1`, sends, deletes it; tenant B creates `shop-1`. Every read and write by
instance (pending, list, stats, retry, purge, start-up recovery, counters) sees B's messages
only, while A can still read its own by id.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.store.store_helpers import T0, FakeWall, instance, message
from waz_actors.errors import InvalidState, NotFound
from waz_actors.store import MessageRecord, Store
from waz_actors.store.connection import connect
from waz_actors.store.schema import MIGRATIONS, migrate

SHOP = "shop-1"


def a_leaves_messages(s: Store) -> dict[str, MessageRecord]:
    """Tenant A's shop-1 with a sent, a failed and a queued message, then deleted."""
    s.create_instance(instance(SHOP, "a"))
    out = {}
    for status in ("sent", "failed", "queued"):
        rec, _ = s.enqueue(message(SHOP, "a", text=f"a-{status}"), max_queue=10).result()
        if status != "queued":
            s.update_message(rec.message_id, "sending").result()
            s.update_message(rec.message_id, status).result()
        out[status] = rec
    s.delete_instance(SHOP)
    return out


def sees_nothing_of_a(s: Store) -> None:
    assert s.list_messages(SHOP, limit=1000) == []
    assert s.pending_messages(SHOP) == []
    assert s.pending_count(SHOP) == 0
    stats = s.queue_stats(SHOP)
    assert {k: stats[k] for k in ("depth", "in_flight", "sent", "failed", "cancelled")} == {
        "depth": 0,
        "in_flight": 0,
        "sent": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert stats["oldest_age"] is None


@pytest.mark.parametrize("new_tenant", ["b", "a"])
def test_a_new_instance_with_a_reused_id_sees_none_of_the_old_messages(
    make_store: Callable[..., Store], new_tenant: str
) -> None:
    s = make_store()
    old = a_leaves_messages(s)
    s.create_instance(instance(SHOP, new_tenant))
    sees_nothing_of_a(s)
    # retry and purge do not reach the old messages either
    assert s.requeue_failed(SHOP, None, max_queue=10) == []
    assert s.requeue_failed(SHOP, [old["failed"].message_id], max_queue=10) == []
    assert s.cancel_pending(SHOP, status="queued") == []
    got = s.get_message(old["failed"].message_id)
    assert got is not None and got.status == "failed" and got.tenant == "a"
    with pytest.raises(InvalidState, match="deleted instance"):
        s.update_message(old["failed"].message_id, "queued").result()
    assert s.get_message(old["failed"].message_id).status == "failed"  # type: ignore[union-attr]
    # the new instance's own messages are all there is
    mine, _ = s.enqueue(message(SHOP, new_tenant, text="mine"), max_queue=10).result()
    assert [m.message_id for m in s.list_messages(SHOP)] == [mine.message_id]
    assert [m.message_id for m in s.pending_messages(SHOP)] == [mine.message_id]
    assert s.pending_count(SHOP) == 1
    assert s.queue_stats(SHOP)["depth"] == 1
    with pytest.raises(Exception, match="after"):
        s.list_messages(SHOP, after=old["sent"].message_id)


def test_a_reopened_store_keeps_the_old_messages_out(
    make_store: Callable[..., Store], target: str | Path, wall: FakeWall
) -> None:
    s = make_store()
    old = a_leaves_messages(s)
    s.create_instance(instance(SHOP, "b"))
    s.close()
    with Store(target, wall=wall) as s2:
        assert s2.recover_sending() == 0
        sees_nothing_of_a(s2)
        assert s2.get_message(old["sent"].message_id).status == "sent"  # type: ignore[union-attr]


def test_enqueue_for_another_tenants_instance_is_not_found(store: Store) -> None:
    # the instance was deleted and created again by another tenant after the caller looked
    with pytest.raises(NotFound):
        store.enqueue(message("i1", "someone-else"), max_queue=10).result()
    assert store.pending_count("i1") == 0
    assert store.totals()["queued"] == 0


def test_a_reload_that_hands_an_instance_to_another_tenant_hides_the_old_messages(
    store: Store,
) -> None:
    sent, _ = store.enqueue(message(text="old-sent"), max_queue=10).result()
    store.update_message(sent.message_id, "sent").result()
    queued, _ = store.enqueue(message(text="old-queued"), max_queue=10).result()
    store.update_instance("i1", driver="sim", tenant="t2", settings={}, desired="running")
    assert store.list_messages("i1") == []
    assert store.pending_count("i1") == 0
    gone = store.get_message(queued.message_id)
    assert gone is not None and gone.status == "cancelled"
    assert store.history(queued.message_id)[-1]["reason"] == "instance moved to another tenant"
    # the same tenant again changes nothing
    mine, _ = store.enqueue(message("i1", "t2"), max_queue=10).result()
    store.update_instance("i1", driver="sim", tenant="t2", settings={"x": 1}, desired="running")
    assert [m.message_id for m in store.list_messages("i1")] == [mine.message_id]


def test_start_up_cancels_a_pending_message_no_instance_owns(
    store: Store, target: str | Path
) -> None:
    rec, _ = store.enqueue(message(), max_queue=10).result()
    store.update_message(rec.message_id, "sending").result()
    # left over by a deleted instance
    store.submit(lambda tx: tx.conn.execute("UPDATE messages SET incarnation = NULL")).result()
    store.close()
    with Store(target) as s:
        assert s.pending_count("i1") == 0
        assert s.recover_sending() == 0
        assert s.get_message(rec.message_id).status == "cancelled"  # type: ignore[union-attr]
        assert s.pending_messages("i1") == []


def v1_database(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate(conn, MIGRATIONS[:1])
    return conn


def add_v1_message(
    conn: sqlite3.Connection, mid: str, tenant: str, status: str, created: float
) -> None:
    conn.execute(
        "INSERT INTO messages (message_id, instance_id, tenant, recipient, text, status,"
        " created_at, updated_at) VALUES (?, ?, ?, '5511999999999', ?, ?, ?, ?)",
        (mid, SHOP, tenant, f"text of {mid}", status, created, created),
    )
    conn.execute(
        "INSERT INTO message_history (message_id, status, time) VALUES (?, ?, ?)",
        (mid, status, created),
    )


def test_the_migration_leaves_the_previous_owners_messages_out(db_path: Path) -> None:
    """A database the leak already happened in: B's shop-1 next to A's old messages."""
    conn = v1_database(db_path)
    conn.execute(
        "INSERT INTO instances (instance_id, tenant, driver, desired, state, since, created_at)"
        " VALUES (?, 'b', 'sim', 'running', 'stopped', ?, ?)",
        (SHOP, T0 + 100, T0 + 100),
    )
    add_v1_message(conn, "A-SENT", "a", "sent", T0)
    add_v1_message(conn, "A-FAILED", "a", "failed", T0)
    add_v1_message(conn, "A-QUEUED", "a", "queued", T0)  # could only be there by the bug
    add_v1_message(conn, "B-OLD", "b", "sent", T0 + 50)  # B's own, of an older shop-1
    add_v1_message(conn, "B-SENT", "b", "sent", T0 + 200)
    add_v1_message(conn, "B-QUEUED", "b", "queued", T0 + 300)
    conn.close()
    with Store(db_path) as s:
        assert [m.message_id for m in s.list_messages(SHOP)] == ["B-SENT", "B-QUEUED"]
        assert [m.message_id for m in s.pending_messages(SHOP)] == ["B-QUEUED"]
        assert s.pending_count(SHOP) == 1
        assert s.requeue_failed(SHOP, None, max_queue=10) == []
        assert s.get_message("A-QUEUED").status == "cancelled"  # type: ignore[union-attr]
        assert s.history("A-QUEUED")[-1]["reason"] == "instance deleted"
        assert s.get_message("A-FAILED").status == "failed"  # type: ignore[union-attr]
        stats = s.queue_stats(SHOP)
        assert (stats["depth"], stats["sent"], stats["failed"]) == (1, 1, 0)
        # and a new message joins B's instance
        rec, _ = s.enqueue(message(SHOP, "b"), max_queue=10).result()
        assert s.pending_count(SHOP) == 2
        assert s.list_messages(SHOP)[-1].message_id == rec.message_id
