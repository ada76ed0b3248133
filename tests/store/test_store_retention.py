"""Retention (issue 11, item 10): final messages, their history, events and idempotency keys
older than the cutoffs go, in small batches each committed alone; nothing pending ever goes."""

from __future__ import annotations

import pytest

from tests.store.store_helpers import T0, FakeWall, message
from waz_actors.errors import BadRequest
from waz_actors.store import MessageRecord, Store
from waz_actors.store.retention import DAY, Pruner, cutoffs
from waz_actors.store.webhook_outbox import Attempt, Outbox
from waz_actors.store.webhooks import WebhookRecord

NO_HOOKS = {"webhook_deliveries": 0, "webhook_events": 0}
OLD, NEW = T0 + 10, T0 + 40 * DAY  # "now" is NEW; the cutoff 30 days before it


def settle(store: Store, wall: FakeWall, status: str, at: float, **kw: object) -> MessageRecord:
    wall.t = at
    rec, _ = store.enqueue(message(created_at=at, updated_at=at, **kw), max_queue=100).result()
    if status != "queued":
        store.update_message(rec.message_id, "sending").result()
        store.update_message(rec.message_id, status).result()
    return rec


def fill(store: Store, wall: FakeWall) -> dict[str, MessageRecord]:
    out = {f"old-{s}": settle(store, wall, s, OLD) for s in ("sent", "failed", "cancelled")}
    out["old-queued"] = settle(store, wall, "queued", OLD)
    wall.t = OLD
    store.enqueue(message(created_at=OLD), max_queue=100).result()  # another old pending one
    out["old-sending"] = store.pending_messages("i1")[-1]
    store.update_message(out["old-sending"].message_id, "sending").result()
    out["new-sent"] = settle(store, wall, "sent", NEW - DAY)
    wall.t = OLD
    store.log_event("old.event", {"n": 1}).result()
    wall.t = NEW
    store.log_event("new.event", {"n": 2}).result()
    return out


def rows(store: Store, table: str) -> int:
    sql = f"SELECT count(*) FROM {table}"
    return store.writer.call(lambda tx: int(tx.conn.execute(sql).fetchone()[0]))


def test_prune_deletes_old_final_messages_history_and_events_never_pending(
    store: Store, wall: FakeWall
) -> None:
    msgs = fill(store, wall)
    cut = NEW - 30 * DAY
    history_before = rows(store, "message_history")
    dry = store.prune(cut, dry_run=True)
    assert dry == {
        "messages": 3,
        "history": 9,
        "events": 1,
        "idempotency_keys": 0,
        "inbox": 0,
        **NO_HOOKS,
    }
    assert rows(store, "message_history") == history_before  # a dry run writes nothing
    assert store.get_message(msgs["old-sent"].message_id) is not None

    assert store.prune(cut) == dry
    for name in ("old-sent", "old-failed", "old-cancelled"):
        assert store.get_message(msgs[name].message_id) is None
        assert store.history(msgs[name].message_id) == []
    for name in ("old-queued", "old-sending", "new-sent"):
        assert store.get_message(msgs[name].message_id) is not None, name
        assert store.history(msgs[name].message_id), name
    assert store.pending_count("i1") == 2
    assert [e["topic"] for e in store.recent_events()] == ["new.event"]
    assert store.prune(cut) == {
        "messages": 0,
        "history": 0,
        "events": 0,
        "idempotency_keys": 0,
        "inbox": 0,
        "webhook_deliveries": 0,
        "webhook_events": 0,
    }


def test_prune_works_in_batches_each_its_own_commit(store: Store, wall: FakeWall) -> None:
    for _ in range(5):
        settle(store, wall, "sent", OLD)
    wall.t = NEW
    commits = store.stats()["commits"]
    assert store.prune(NEW - DAY, batch=2)["messages"] == 5
    assert store.stats()["commits"] - commits >= 3  # 2 + 2 + 1, plus the events pass
    # stop_when is asked between batches
    for _ in range(5):
        settle(store, wall, "sent", OLD)
    wall.t = NEW
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 1

    assert store.prune(NEW - DAY, batch=2, stop_when=stop)["messages"] == 2
    assert store.totals()["sent"] == 3


def test_expired_idempotency_keys_are_cleared_on_final_messages_only(
    store: Store, wall: FakeWall
) -> None:
    done = settle(store, wall, "sent", OLD, idempotency_key="k-done")
    waiting = settle(store, wall, "queued", OLD, idempotency_key="k-waiting")
    wall.t = NEW
    counts = store.prune(None, keys_older_than=NEW - DAY)
    assert counts == {
        "messages": 0,
        "history": 0,
        "events": 0,
        "idempotency_keys": 1,
        "inbox": 0,
        **NO_HOOKS,
    }
    kept = store.get_message(done.message_id)
    assert kept is not None and kept.idempotency_key is None and kept.status == "sent"
    # the key is free again; the pending message still answers a replay
    again, created = store.enqueue(message(idempotency_key="k-done"), max_queue=100).result()
    assert created and again.message_id != done.message_id
    replay, created = store.enqueue(message(idempotency_key="k-waiting"), max_queue=100).result()
    assert not created and replay.message_id == waiting.message_id


def test_prune_checks_its_arguments(store: Store) -> None:
    with pytest.raises(BadRequest):
        store.prune("yesterday")  # type: ignore[arg-type]
    with pytest.raises(BadRequest):
        store.prune(T0, batch=0)


def test_cutoffs_and_zero_days_keep_for_ever() -> None:
    assert cutoffs(NEW, 30, 7) == (NEW - 30 * DAY, NEW - 7 * DAY)
    assert cutoffs(NEW, 0, 0) == (None, None)


def test_pruner_runs_the_configured_prune(store: Store, wall: FakeWall) -> None:
    msgs = fill(store, wall)
    pruner = Pruner(
        store, retention_days=30, idempotency_days=0, batch=100, interval=3600, wall=wall
    )
    assert pruner.enabled
    assert pruner.run_once()["messages"] == 3
    assert store.get_message(msgs["old-queued"].message_id) is not None
    off = Pruner(store, retention_days=0, idempotency_days=0, batch=100, interval=1, wall=wall)
    assert not off.enabled
    off.start()
    off.stop()


def test_prune_deletes_done_webhook_deliveries_and_their_event_bodies(
    store: Store, wall: FakeWall
) -> None:
    """Delivered, dead (and failed) deliveries with no attempt since the cutoff go, then the
    old event bodies no delivery refers to; a pending delivery and its event stay, however old."""
    wall.t = OLD
    rec = WebhookRecord(
        "wh_1", "t1", "http://x.test/", ("message.status",), "s" * 20, True, None, OLD
    )
    store.webhooks.create_webhook(rec).result()
    settle(store, wall, "sent", OLD)  # queued, sending, sent: three events, three deliveries
    outbox = Outbox.open(store.url or store.path or "")
    outbox.step([], [], 100, 100)  # the worker's fan-out
    first, second, third = outbox.load_pending(0, 10)
    outbox.step([Attempt(first.seq, "delivered", None, 204, None, None, OLD)], [second.seq], 0, 0)
    # `third` stays pending
    wall.t = NEW
    settle(store, wall, "queued", NEW)
    outbox.step([], [], 100, 100)
    (recent,) = outbox.load_pending(third.seq, 10)
    outbox.step([Attempt(recent.seq, "delivered", None, 200, None, None, NEW)], [], 0, 0)
    # an old event not fanned out yet (the worker stopped since) stays with its rows to come
    wall.t = OLD
    settle(store, wall, "queued", OLD)
    outbox.close()
    cut = NEW - 30 * DAY
    dry = store.prune(cut, dry_run=True)
    assert (dry["webhook_deliveries"], dry["webhook_events"]) == (2, 2)
    assert rows(store, "webhook_deliveries") == 4  # a dry run writes nothing

    assert store.prune(cut, batch=1) == dry  # one row per write, a cursor over the outbox
    left = store.webhooks.list_deliveries("wh_1", limit=10)
    assert [(d["seq"], d["status"]) for d in left] == [
        (third.seq, "pending"),
        (recent.seq, "delivered"),
    ]
    with store._db.read() as conn:  # the bodies themselves
        bodies = [r[0] for r in conn.execute("SELECT event_id FROM webhook_events ORDER BY seq")]
    assert bodies[:2] == [third.event_id, recent.event_id] and len(bodies) == 3
    assert store.prune(cut)["webhook_deliveries"] == 0


def test_prune_keeps_an_event_fanned_out_after_the_prune_looked(
    store: Store, wall: FakeWall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prune reads which events deliveries refer to once, then deletes in batches: an old
    event the worker fans out in between (it was stopped for a while) keeps its body, or its
    delivery would be neither sent nor ever dead (the pending read joins the body)."""
    from waz_actors.store import retention

    wall.t = OLD
    rec = WebhookRecord(
        "wh_1", "t1", "http://x.test/", ("message.status",), "s" * 20, True, None, OLD
    )
    store.webhooks.create_webhook(rec).result()
    settle(store, wall, "queued", OLD)  # an old event, not fanned out: no delivery refers to it
    wall.t = NEW
    settle(store, wall, "queued", NEW)  # the newest event stays anyway
    outbox = Outbox.open(store.url or store.path or "")
    assert outbox.load_pending(0, 10) == []
    real = retention._delete_webhook_events
    fanned: list[int] = []

    def late_fan_out(*args: object, **kw: object) -> object:
        if not fanned:  # the worker's look, between the prune's read and its delete
            fanned.append(outbox.step([], [], 1, 100).deliveries)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(retention, "_delete_webhook_events", late_fan_out)
    store.prune(NEW - 30 * DAY)
    assert fanned == [1]
    (due,) = outbox.load_pending(0, 10)  # still there, with its body, to be sent
    assert due.body and due.created_at == OLD
    outbox.close()
