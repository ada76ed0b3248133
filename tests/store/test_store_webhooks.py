"""The tap writes an event's deliveries in the transaction of the write that makes the event
durable (invariant 12): with it, or not at all; and nothing when nobody subscribed."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from waz_actors.errors import InvalidState
from waz_actors.store import Store
from waz_actors.store.records import MessageRecord
from waz_actors.store.webhooks import WebhookRecord


def hook(store: Store, tenant: str | None, events: tuple[str, ...] = ("*",)) -> str:
    wid = f"wh_{tenant}_{len(store.webhooks.list_webhooks())}"
    rec = WebhookRecord(wid, tenant, "http://x.test/", events, "s" * 20, True, None, time.time())
    store.webhooks.create_webhook(rec).result(5)
    return wid


def message(store: Store, mid: str) -> None:
    now = time.time()
    rec = MessageRecord(
        message_id=mid, instance_id="i1", tenant="t1", to="5511999999999", text="x",
        media=None, status="queued", attempts=0, last_error=None, wa_id=None,
        idempotency_key=None, created_at=now, updated_at=now, expires_at=None,
    )  # fmt: skip
    store.enqueue(rec, max_queue=100).result(5)


def events(store: Store) -> list[tuple[str, str]]:
    with store._db.read() as conn:  # the test looks at the rows themselves
        rows = conn.execute(
            "SELECT d.webhook_id, e.event FROM webhook_deliveries d"
            " JOIN webhook_events e USING (event_id) ORDER BY d.seq"
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def test_nothing_is_written_without_a_subscriber(store: Store) -> None:
    message(store, "m0")
    store.update_message("m0", "sending").result(5)
    assert events(store) == []


def test_deliveries_go_with_their_write_or_not_at_all(store: Store) -> None:
    mine = hook(store, "t1", ("message.status",))
    other = hook(store, "t2")
    wide = hook(store, None, ("message.*",))
    message(store, "m1")
    store.update_message("m1", "sending").result(5)
    assert events(store) == [(mine, "message.status"), (wide, "message.status")] * 2
    # a status change that fails (sent -> queued is not allowed after sent) rolls back its
    # deliveries with it
    store.update_message("m1", "sent").result(5)
    before = len(events(store))
    with pytest.raises(InvalidState):
        store.update_message("m1", "queued").result(5)
    assert len(events(store)) == before
    assert other not in {w for w, _ in events(store)}
    # a webhook deleted: the cache reloads, nothing more for it
    store.webhooks.delete_webhook(mine).result(5)
    store.record_receipt("m1", "delivered", time.time()).result(5)
    assert events(store)[-1] == (wide, "message.status")
    assert mine not in {w for w, _ in events(store)}  # its rows went with it (cascade)


def test_outbox_operations_run_on_both_backends(store: Store) -> None:
    """The campaign bridge, mark_dead and redeliver (IN lists, no json_each), on SQLite and
    PostgreSQL alike."""
    mine = hook(store, "t1", ("campaign.*", "message.status"))
    hook(store, "t2", ("campaign.*",))
    body = {"tenant": "t1", "time": 1.0, "instance_id": None, "campaign_id": "c1", "state": "done"}
    store.webhooks.emit_published("campaign.state", body)
    store.webhooks.emit_published("campaign.progress", {**body, "tenant": None})  # no tenant: none
    store.webhooks.barrier().result(5)
    assert events(store) == [(mine, "campaign.state")]
    message(store, "m2")
    due = store.webhooks.load_pending(0, 10)
    assert [d.event for d in due] == ["campaign.state", "message.status"]
    assert store.webhooks.mark_dead([d.seq for d in due]).result(5) == 2
    assert store.webhooks.delivery_counts(mine) == {"dead": 2}
    assert store.webhooks.redeliver(mine, [due[0].event_id]).result(5) == 1
    assert store.webhooks.delivery_counts(mine) == {"dead": 1, "pending": 1}
    assert store.webhooks.redeliver(mine, None).result(5) == 1
    assert store.webhooks.delivery_counts() == {"pending": 2}


def test_a_webhook_made_by_another_store_on_the_database_is_seen(
    store: Store, make_store: Callable[..., Store]
) -> None:
    """The cluster: two daemons on one database; the tap of the one that did not create the
    webhook reloads on its own (reload_every) and writes its deliveries."""
    other = make_store()
    message(other, "m-before")  # the other's cache is loaded now (no webhooks)
    hook(store, "t1", ("message.status",))
    other.webhooks.tap.reload_every = 0.0
    message(other, "m-after")
    assert [e for _, e in events(store)] == ["message.status"]
