"""The outbox: enqueue, idempotency, queue cap, status changes with history, queries."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.store.store_helpers import T0, FakeWall, instance, message
from waz_actors.errors import BadRequest, Exists, InvalidState, NotFound, QueueFull
from waz_actors.store import Store


def test_enqueue_is_stored_as_queued_with_history(store: Store) -> None:
    rec, created = store.enqueue(
        message(status="sent", attempts=5, media={"url": "http://x/y.png"}), max_queue=10
    ).result()
    assert created
    assert rec.status == "queued" and rec.attempts == 0  # the store decides, not the caller
    assert store.get_message(rec.message_id) == rec
    assert store.history(rec.message_id) == [{"status": "queued", "time": T0, "reason": "accepted"}]
    assert store.pending_count("i1") == 1


def test_idempotency_key_is_per_tenant(store: Store) -> None:
    store.create_instance(instance("i2", "t2"))
    first, created = store.enqueue(message(idempotency_key="k"), max_queue=10).result()
    assert created
    again, created = store.enqueue(
        message(idempotency_key="k", text="other"), max_queue=10
    ).result()
    assert not created and again == first
    assert store.totals()["queued"] == 1
    other, created = store.enqueue(message("i2", "t2", idempotency_key="k"), max_queue=10).result()
    assert created and other.message_id != first.message_id
    assert store.totals()["queued"] == 2


def test_idempotent_replay_answers_even_when_queue_full(store: Store) -> None:
    first, _ = store.enqueue(message(idempotency_key="k"), max_queue=1).result()
    again, created = store.enqueue(message(idempotency_key="k"), max_queue=1).result()
    assert not created and again.message_id == first.message_id


def test_queue_full_inserts_nothing(store: Store) -> None:
    for _ in range(3):
        store.enqueue(message(), max_queue=3).result()
    extra = message()
    with pytest.raises(QueueFull) as info:
        store.enqueue(extra, max_queue=3).result()
    assert info.value.details["max_queue"] == 3
    assert store.get_message(extra.message_id) is None
    assert store.history(extra.message_id) == []
    assert store.pending_count("i1") == 3


def test_finished_messages_free_queue_slots(store: Store) -> None:
    a, _ = store.enqueue(message(), max_queue=1).result()
    store.update_message(a.message_id, "sending").result()
    with pytest.raises(QueueFull):
        store.enqueue(message(), max_queue=1).result()  # sending still occupies the slot
    store.update_message(a.message_id, "sent", attempts=1, wa_id="W1").result()
    assert store.pending_count("i1") == 0
    store.enqueue(message(), max_queue=1).result()


def test_enqueue_errors_change_nothing(store: Store) -> None:
    with pytest.raises(NotFound):
        store.enqueue(message("nope"), max_queue=10).result()
    rec, _ = store.enqueue(message(), max_queue=10).result()
    with pytest.raises(Exists):
        store.enqueue(message(message_id=rec.message_id, text="dup"), max_queue=10).result()
    assert store.get_message(rec.message_id) == rec
    bad = [
        (message(text=None, media=None), "text"),
        (message(to=""), "to"),
        (message(message_id=""), "message_id"),
        (message(text=123), "text"),
        (message(media=["x"]), "media"),
        (message(media={"x": object()}), "media"),
        (message(created_at="now"), "created_at"),
        (message(idempotency_key=""), "idempotency_key"),
    ]
    for rec_bad, field in bad:
        with pytest.raises(BadRequest) as info:
            store.enqueue(rec_bad, max_queue=10)
        assert info.value.details["field"] == field
    with pytest.raises(BadRequest):
        store.enqueue(message(), max_queue=-1)
    assert store.totals()["queued"] == 1 and store.pending_count("i1") == 1


def test_update_message_writes_history_and_fields(store: Store, wall: FakeWall) -> None:
    rec, _ = store.enqueue(message(), max_queue=10).result()
    wall.t += 5
    assert store.update_message(rec.message_id, "sending", reason="sending").result()
    wall.t += 1
    store.update_message(
        rec.message_id, "queued", attempts=1, error="timeout", reason="retry in 5s"
    ).result()
    wall.t += 1
    store.update_message(rec.message_id, "sent", attempts=2, wa_id="WA1", reason="sent").result()
    got = store.get_message(rec.message_id)
    assert got is not None
    assert (got.status, got.attempts, got.last_error, got.wa_id) == ("sent", 2, "timeout", "WA1")
    assert got.updated_at == T0 + 7
    assert [(h["status"], h["time"], h["reason"]) for h in store.history(rec.message_id)] == [
        ("queued", T0, "accepted"),
        ("sending", T0 + 5, "sending"),
        ("queued", T0 + 6, "retry in 5s"),
        ("sent", T0 + 7, "sent"),
    ]
    assert store.pending_count("i1") == 0


def test_only_if_guards_the_change(store: Store) -> None:
    rec, _ = store.enqueue(message(), max_queue=10).result()
    store.update_message(rec.message_id, "sending").result()
    assert not store.update_message(rec.message_id, "cancelled", only_if={"queued"}).result()
    got = store.get_message(rec.message_id)
    assert got is not None and got.status == "sending"
    assert len(store.history(rec.message_id)) == 2
    assert store.update_message(rec.message_id, "queued", only_if={"sending"}).result()
    assert store.update_message(rec.message_id, "cancelled", only_if={"queued"}).result()
    assert store.pending_count("i1") == 0


def test_final_status_is_final(store: Store) -> None:
    rec, _ = store.enqueue(message(), max_queue=10).result()
    store.update_message(rec.message_id, "sent").result()
    for status in ("queued", "sending", "failed", "sent"):
        with pytest.raises(InvalidState):
            store.update_message(rec.message_id, status).result()
    assert len(store.history(rec.message_id)) == 2
    assert store.pending_count("i1") == 0


def test_update_message_bad_input(store: Store) -> None:
    rec, _ = store.enqueue(message(), max_queue=10).result()
    with pytest.raises(BadRequest, match="unknown message status"):
        store.update_message(rec.message_id, "delivered")
    with pytest.raises(BadRequest):
        store.update_message(rec.message_id, "sent", only_if={"later"})
    with pytest.raises(BadRequest):
        store.update_message(rec.message_id, "sent", attempts=-1)
    with pytest.raises(NotFound):
        store.update_message("missing", "sent").result()
    assert store.get_message(rec.message_id) == rec


def test_pending_messages_oldest_first(store: Store) -> None:
    late, _ = store.enqueue(message(created_at=T0 + 10), max_queue=10).result()
    early, _ = store.enqueue(message(created_at=T0), max_queue=10).result()
    tie, _ = store.enqueue(message(created_at=T0), max_queue=10).result()
    done, _ = store.enqueue(message(created_at=T0 - 5), max_queue=10).result()
    store.update_message(done.message_id, "failed").result()
    store.update_message(late.message_id, "sending").result()
    ids = [m.message_id for m in store.pending_messages("i1")]
    assert ids == [early.message_id, tie.message_id, late.message_id]


def test_pending_messages_by_id_reads_only_those_still_pending(store: Store) -> None:
    """A cluster wake-up names the message another node accepted: the owner reads that row
    alone (never the whole queue again), and only while it is pending."""
    a, _ = store.enqueue(message(), max_queue=10).result()
    b, _ = store.enqueue(message(), max_queue=10).result()
    c, _ = store.enqueue(message(), max_queue=10).result()
    store.update_message(c.message_id, "failed").result()
    got = store.pending_messages("i1", [b.message_id])
    assert [m.message_id for m in got] == [b.message_id]
    assert store.pending_messages("i1", [c.message_id, "no-such-id"]) == []  # final; unknown
    assert store.pending_messages("i1", []) == []
    # Another instance's id does not read this instance's message.
    store.create_instance(instance("i2"))
    assert store.pending_messages("i2", [a.message_id]) == []
    assert [m.message_id for m in store.pending_messages("i1")] == [a.message_id, b.message_id]


def test_list_messages_pages_by_insertion(store: Store) -> None:
    ids = [store.enqueue(message(), max_queue=100).result()[0].message_id for _ in range(7)]
    store.update_message(ids[1], "failed").result()
    store.update_message(ids[4], "failed").result()
    page1 = store.list_messages("i1", limit=3)
    page2 = store.list_messages("i1", limit=3, after=page1[-1].message_id)
    page3 = store.list_messages("i1", limit=3, after=page2[-1].message_id)
    assert [m.message_id for m in page1 + page2 + page3] == ids
    assert [m.message_id for m in store.list_messages("i1", status="failed")] == [ids[1], ids[4]]
    assert [m.message_id for m in store.list_messages("i1", status="failed", after=ids[1])] == [
        ids[4]
    ]
    with pytest.raises(BadRequest, match="after"):
        store.list_messages("i1", after="nope")
    with pytest.raises(BadRequest, match="limit"):
        store.list_messages("i1", limit=0)
    with pytest.raises(BadRequest, match="status"):
        store.list_messages("i1", status="weird")


def test_queue_stats_and_totals(store: Store, wall: FakeWall) -> None:
    assert store.queue_stats("i1")["oldest_age"] is None
    recs = [store.enqueue(message(created_at=T0 + i), max_queue=10).result()[0] for i in range(6)]
    for rec, status in zip(
        recs, ["sent", "failed", "cancelled", "expired", "sending"], strict=False
    ):
        store.update_message(rec.message_id, status).result()
    stats = store.queue_stats("i1", now_wall=T0 + 100)
    assert stats == {
        "depth": 1,
        "in_flight": 1,
        "oldest_age": 100 - 4,  # the sending one, created at T0 + 4
        "sent": 1,
        "failed": 1,
        "cancelled": 1,
        "expired": 1,
    }
    wall.t = T0 + 10
    assert store.queue_stats("i1")["oldest_age"] == 6
    assert store.totals() == {
        "queued": 1,
        "sending": 1,
        "sent": 1,
        "failed": 1,
        "cancelled": 1,
        "expired": 1,
        "unknown": 0,
    }


def test_recover_sending(store: Store) -> None:
    a, _ = store.enqueue(message(), max_queue=10).result()
    b, _ = store.enqueue(message(), max_queue=10).result()
    store.update_message(a.message_id, "sending").result()
    assert store.recover_sending() == 1
    got = store.get_message(a.message_id)
    assert got is not None and got.status == "queued" and got.message_id == a.message_id
    assert store.history(a.message_id)[-1]["reason"] == "recovered after restart"
    assert len(store.history(b.message_id)) == 1
    assert store.pending_count("i1") == 2
    assert store.recover_sending() == 0


def test_cancel_pending(store: Store) -> None:
    a, _ = store.enqueue(message(), max_queue=10).result()
    b, _ = store.enqueue(message(), max_queue=10).result()
    store.update_message(b.message_id, "sending").result()
    assert store.cancel_pending("i1", reason="purged by operator") == [a.message_id]
    assert store.history(a.message_id)[-1] == {
        "status": "cancelled",
        "time": T0,
        "reason": "purged by operator",
    }
    assert store.pending_count("i1") == 1
    with pytest.raises(BadRequest):
        store.cancel_pending("i1", status="sent")
    assert store.cancel_pending("i1", status="sending") == [b.message_id]
    assert store.pending_count("i1") == 0


def test_requeue_failed_respects_max_queue(store: Store) -> None:
    failed = []
    for _ in range(4):
        rec, _ = store.enqueue(message(), max_queue=10).result()
        store.update_message(rec.message_id, "failed", attempts=3, error="x").result()
        failed.append(rec.message_id)
    store.enqueue(message(), max_queue=10).result()
    assert store.requeue_failed("i1", None, max_queue=3) == failed[:2]
    got = store.get_message(failed[0])
    assert got is not None and got.status == "queued" and got.attempts == 0
    assert store.history(failed[0])[-1]["reason"] == "retried by operator"
    assert store.pending_count("i1") == 3
    # by id: only failed messages of this instance, unknown ids ignored
    assert store.requeue_failed("i1", [failed[3], "nope"], max_queue=10) == [failed[3]]
    assert store.requeue_failed("i1", [failed[0]], max_queue=10) == []
    with pytest.raises(BadRequest):
        store.requeue_failed("i1", "abc", max_queue=10)  # type: ignore[arg-type]


def test_delete_instance_cancels_pending_with_history(store: Store) -> None:
    store.create_instance(instance("i2"))
    a, _ = store.enqueue(message(), max_queue=10).result()
    b, _ = store.enqueue(message(), max_queue=10).result()
    c, _ = store.enqueue(message(), max_queue=10).result()
    other, _ = store.enqueue(message("i2"), max_queue=10).result()
    store.update_message(b.message_id, "sending").result()
    store.update_message(c.message_id, "sent").result()
    store.add_conflict("i1", T0).result()
    assert sorted(store.delete_instance("i1")) == sorted([a.message_id, b.message_id])
    assert store.get_instance("i1") is None
    for rec in (a, b):
        got = store.get_message(rec.message_id)
        assert got is not None and got.status == "cancelled"
        assert store.history(rec.message_id)[-1]["reason"] == "instance deleted"
    done = store.get_message(c.message_id)
    assert done is not None and done.status == "sent"
    assert store.conflicts_since("i1", 0) == []
    assert store.pending_count("i1") == 0 and store.pending_count("i2") == 1
    assert store.get_message(other.message_id) == other
    with pytest.raises(NotFound):
        store.delete_instance("i1")


def test_counters_survive_reopen(make_store: Callable[..., Store]) -> None:
    s = make_store()
    s.create_instance(instance("i1"))
    for _ in range(3):
        s.enqueue(message(), max_queue=3).result()
    s.close()
    s2 = make_store()
    assert s2.pending_count("i1") == 3
    with pytest.raises(QueueFull):
        s2.enqueue(message(), max_queue=3).result()


def test_media_info_is_stored_with_the_status_and_kept(store: Store) -> None:
    media = {"url": "https://x.test/a.jpg", "caption": "c"}
    rec, _ = store.enqueue(message(text=None, media=media), max_queue=10).result()
    assert store.get_message(rec.message_id).media_info is None  # type: ignore[union-attr]
    info = {"mime": "image/jpeg", "kind": "image", "size": 10, "sha256": "ab" * 32}
    store.set_status(rec.message_id, "sending", reason="sending")
    store.set_status(rec.message_id, "queued", error="media: timed out", media_info=info)
    store.set_status(rec.message_id, "sending", reason="sending")
    store.set_status(rec.message_id, "sent", wa_id="W1")  # no info this time: the first stays
    store.flush()
    got = store.get_message(rec.message_id)
    assert got is not None and got.media == media and got.media_info == info
    assert [m.media_info for m in store.pending_messages("i1")] == []
