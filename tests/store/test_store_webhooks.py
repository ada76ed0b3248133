"""The tap writes an event in the transaction of the write that makes it durable (invariant
12): with it, or not at all; and nothing when nobody subscribed. The worker's fan-out
(store/webhook_outbox.py) turns events into deliveries off the send path, with its cursor moved
in the same transaction: a crash in the middle re-fans-out what was not committed, once."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import msgpack
import pytest

from waz_actors.errors import InvalidState
from waz_actors.store import Store
from waz_actors.store.records import MessageRecord
from waz_actors.store.webhook_outbox import Attempt, Fan, Outbox, Write
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


@pytest.fixture
def outbox(store: Store) -> Iterator[Outbox]:
    """The worker's side, on a connection of its own to the store's database."""
    o = Outbox.open(store.url or store.path or "")
    yield o
    o.close()


def written(store: Store) -> list[tuple[str, str | None]]:
    """The events the tap wrote: (event, tenant), in seq order."""
    with store._db.read() as conn:
        rows = conn.execute("SELECT event, tenant FROM webhook_events ORDER BY seq").fetchall()
    return [(r[0], r[1]) for r in rows]


def fan_out(outbox: Outbox, events: int = 1000) -> int:
    return outbox.step([], [], events, 100000).events


def test_nothing_is_written_without_a_subscriber(store: Store) -> None:
    hook(store, "t2")  # another tenant's webhook does not want t1's events either
    message(store, "m0")
    store.update_message("m0", "sending").result(5)
    assert written(store) == []


def test_events_go_with_their_write_and_fan_out_later(store: Store, outbox: Outbox) -> None:
    mine = hook(store, "t1", ("message.status",))
    other = hook(store, "t2")
    wide = hook(store, None, ("message.*",))
    message(store, "m1")
    store.update_message("m1", "sending").result(5)
    # one row per event, whatever the number of webhooks; no delivery on the send path
    assert written(store) == [("message.status", "t1")] * 2
    assert events(store) == []
    assert fan_out(outbox) == 2
    assert events(store) == [(mine, "message.status"), (wide, "message.status")] * 2
    assert fan_out(outbox) == 0  # the cursor moved with the rows
    # a status change that fails (sent -> queued is not allowed after sent) rolls back its
    # event with it
    store.update_message("m1", "sent").result(5)
    with pytest.raises(InvalidState):
        store.update_message("m1", "queued").result(5)
    assert len(written(store)) == 3
    assert fan_out(outbox) == 1
    assert other not in {w for w, _ in events(store)}
    # a webhook deleted: nothing more for it
    store.webhooks.delete_webhook(mine).result(5)
    store.record_receipt("m1", "delivered", time.time()).result(5)
    assert fan_out(outbox) == 1
    assert events(store)[-1] == (wide, "message.status")
    assert mine not in {w for w, _ in events(store)}  # its rows went with it (cascade)


def test_a_webhook_gets_only_events_after_it(store: Store, outbox: Outbox) -> None:
    """Fanned out late, an event still goes only to the webhooks that existed when it was
    written; and a disabled webhook gets none."""
    first = hook(store, "t1", ("message.status",))
    message(store, "m1")  # queued: before `late`
    late = hook(store, "t1", ("message.status",))
    store.update_message("m1", "sending").result(5)
    off = hook(store, "t1")
    store.webhooks.set_webhook_enabled(off, False, "test").result(5)
    store.update_message("m1", "sent").result(5)
    assert fan_out(outbox) == 3
    assert (
        events(store)
        == [(first, "message.status")]
        + [
            (first, "message.status"),
            (late, "message.status"),
        ]
        * 2
    )


CRASH = """
import os, sys
from waz_actors.store.webhook_outbox import Outbox
class Dying:
    def __init__(self, conn):
        self.conn = conn
    def __getattr__(self, name):
        return getattr(self.conn, name)
    def execute(self, sql, *args):
        out = self.conn.execute(sql, *args)
        if "INSERT INTO webhook_deliveries" in sql:
            os._exit(9)  # killed after the delivery rows, in the transaction
        return out
o = Outbox.open(sys.argv[1])
o.conn = Dying(o.conn)
o.step([], [], 1000, 100000)
"""


def test_a_crash_in_the_fan_out_re_fans_out_what_was_not_committed(
    store: Store, outbox: Outbox
) -> None:
    hook(store, "t1", ("message.status",))
    hook(store, None, ("message.status",))
    message(store, "m1")
    store.update_message("m1", "sending").result(5)
    assert fan_out(outbox) == 2  # committed: these stay fanned out
    store.update_message("m1", "sent").result(5)
    before = events(store)
    target = str(store.url or store.path)
    dead = subprocess.run([sys.executable, "-c", CRASH, target], timeout=60)
    assert dead.returncode == 9
    assert events(store) == before  # the process died in the transaction: nothing of it
    assert outbox.backlog() == 1
    assert fan_out(outbox) == 1  # the same event, fanned out now, once
    got = events(store)
    assert len(got) == len(before) + 2 and len(set(got)) == 2
    with store._db.read() as conn:
        pairs = conn.execute("SELECT webhook_id, event_id FROM webhook_deliveries").fetchall()
    assert len({(r[0], r[1]) for r in pairs}) == len(pairs) == 6
    assert outbox.backlog() == 0


def test_outbox_operations_run_on_both_backends(store: Store, outbox: Outbox) -> None:
    """The campaign bridge, mark_dead and redeliver (IN lists, no json_each), on SQLite and
    PostgreSQL alike."""
    mine = hook(store, "t1", ("campaign.*", "message.status"))
    hook(store, "t2", ("campaign.*",))
    body = {"tenant": "t1", "time": 1.0, "instance_id": None, "campaign_id": "c1", "state": "done"}
    # campaign.state goes with its event-log row (same transaction); from the bus, nothing more
    store.log_event("campaign.state", body).result(5)
    store.webhooks.emit_published("campaign.state", body)
    store.webhooks.emit_published("campaign.progress", {**body, "tenant": None})  # no tenant: none
    store.webhooks.barrier().result(5)
    assert fan_out(outbox) == 1
    assert events(store) == [(mine, "campaign.state")]
    message(store, "m2")
    assert fan_out(outbox) == 1
    due = outbox.load_pending(0, 10)
    assert [d.event for d in due] == ["campaign.state", "message.status"]
    outbox.step([], [d.seq for d in due], 0, 0)
    assert store.webhooks.delivery_counts(mine) == {"dead": 2}
    assert store.webhooks.redeliver(mine, [due[0].event_id]).result(5) == 1
    assert store.webhooks.delivery_counts(mine) == {"dead": 1, "pending": 1}
    assert store.webhooks.redeliver(mine, None).result(5) == 1
    assert store.webhooks.delivery_counts() == {"pending": 2}
    # outcomes, a 410 among them, in one write
    first, second = outbox.load_pending(0, 10)
    step = outbox.step(
        [
            Attempt(first.seq, "delivered", None, 204, None, b"", time.time()),
            Attempt(second.seq, "failed", None, 410, None, b"x" * 999, time.time(), "gone"),
        ],
        [],
        0,
        0,
    )
    assert step.disabled == [mine]
    assert store.webhooks.delivery_counts(mine) == {"delivered": 1, "failed": 1}
    assert store.webhooks.get_webhook(mine).enabled is False  # type: ignore[union-attr]
    (failed,) = store.webhooks.list_deliveries(mine, status="failed", limit=5)
    assert failed["last_code"] == 410 and len(failed["last_body"]) == 256


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
    assert written(store) == [("message.status", "t1")]


def test_a_load_steps_over_the_webhooks_it_is_told_to_skip(store: Store, outbox: Outbox) -> None:
    """The worker reads a slow receiver's backlog itself (policy/webhook_lanes.py): the loads
    in seq order leave it out in the database, and its own load reads it by its index."""
    slow, fast = hook(store, "t1", ("message.status",)), hook(store, "t1", ("message.status",))
    for i in range(5):
        message(store, f"m{i}")
    assert fan_out(outbox) == 5
    every = outbox.load_pending(0, 100)
    assert [d.webhook_id for d in every].count(slow) == 5 and len(every) == 10
    rest = outbox.load_pending(0, 100, skip=[slow])
    assert {d.webhook_id for d in rest} == {fast} and len(rest) == 5
    assert [d.seq for d in outbox.load_pending(0, 3, skip=[slow])] == [d.seq for d in rest[:3]]
    top = every[-1].seq
    mine = outbox.load_pending(every[0].seq, 2, webhook_id=slow, upto=top)
    assert [d.webhook_id for d in mine] == [slow, slow]
    assert all(every[0].seq < d.seq <= top for d in mine)
    assert outbox.load_pending(0, 100, webhook_id=slow, upto=every[0].seq - 1) == []


def test_the_worker_write_survives_its_pipe() -> None:
    """The worker's write goes to the daemon as msgpack: every field of every attempt comes
    back (Attempt.wire lists the fields by hand: one added to the class and not to the wire
    would be lost)."""
    attempts = [
        Attempt(7, "pending", 12.5, 503, "busy", b"x" * 3, 11.0),
        Attempt(8, "failed", None, 410, None, None, 11.5, "the receiver answered 410"),
    ]
    fan = Fan(10, 20, 2, [("wh_a", "ev_1", "lane", 1.0, 2.0)])
    w = Write(attempts, [3, 4], fan, {7: ("webhook:wh_a", 3), 3: ("webhook:wh_b", 1)})
    assert Write.from_wire(msgpack.unpackb(msgpack.packb(w.to_wire()))) == w
    for a in attempts:
        assert a.wire() == list(dataclasses.astuple(a))
