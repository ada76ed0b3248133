"""Fencing every owner write on PostgreSQL (issue 16): a write carries its node's lease epoch of
the instance and the database refuses a stale one, changing nothing; each group commit checks
all its epochs in one statement, and a refused write never fails the unrelated writes of its
batch. Real PostgreSQL, real leases (cluster/leases.py), the real writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.store.store_helpers import T0, hold_writer, instance, message
from tests.waiting import wait_until
from waz_actors.errors import StaleEpoch
from waz_actors.store import Store

pytestmark = pytest.mark.parametrize("backend", ["postgres"])


@dataclass
class Node:
    """One daemon's side: its store, its leases and the epochs it believes it holds."""

    store: Store
    leases: Any  # cluster.leases.LeaseStore
    epochs: dict[str, int] = field(default_factory=dict)
    refused: list[tuple[str, int | None]] = field(default_factory=list)

    def acquire(self, n: int = 10) -> None:
        for a in self.leases.acquire(n):
            self.epochs[a.instance_id] = a.epoch


@pytest.fixture
def make_node(make_store: Callable[..., Store], target: str) -> Iterator[Callable[[str], Node]]:
    from waz_actors.cluster.leases import LeaseStore

    made: list[Node] = []

    def make(name: str) -> Node:
        s = make_store()
        node = Node(s, LeaseStore(target, name, 30))
        s.fence_writes(node.epochs.get, lambda i, e: node.refused.append((i, e)))
        made.append(node)
        return node

    yield make
    for node in made:
        node.leases.close()


@pytest.fixture
def a_node(make_node: Callable[[str], Node]) -> Node:
    node = make_node("n1")
    for iid in ("a", "b"):
        node.store.create_instance(instance(iid))
    node.leases.ensure(["a", "b"])
    node.acquire()
    assert set(node.epochs) == {"a", "b"}
    return node


def _expire(target: str, instance_id: str) -> None:
    """The lease runs out in the database (the node was paused past its expiry)."""
    import psycopg

    with psycopg.connect(target, autocommit=True) as c:
        c.execute(
            "UPDATE leases SET expires_at = now() - interval '1 second' WHERE instance_id = %s",
            (instance_id,),
        )


def _sending(s: Store, instance_id: str) -> str:
    rec, _ = s.enqueue(message(instance_id), max_queue=100).result(5)
    assert s.update_message(rec.message_id, "sending", owner=instance_id).result(5)
    return rec.message_id


# Each owner write kind: (make the write, read what it would change). Every write is made for
# instance "a"; `mid` is a message of "a" that is `sending` (its send is in flight).
Write = Callable[[Store, str], "Future[Any] | None"]
Look = Callable[[Store, str], Any]


def _status(s: Store, mid: str) -> Any:
    rec = s.get_message(mid)
    assert rec is not None
    return (rec.status, rec.attempts, rec.wa_id, rec.outcome_unknown, len(s.history(mid)))


def _state(s: Store, _mid: str) -> Any:
    rec = s.get_instance("a")
    assert rec is not None
    return (rec.state, rec.since, rec.last_reason)


KINDS: dict[str, tuple[Write, Look]] = {
    "state save": (
        lambda s, _m: s.save_state("a", "online", since=T0 + 5, reason="connected"),
        _state,
    ),
    "state event": (
        lambda s, _m: s.log_event("instance.a.state", {"state": "online"}, owner="a"),
        lambda s, _m: s.recent_events(prefix="instance.a."),
    ),
    "conflict": (
        lambda s, _m: s.add_conflict("a", T0 + 5),
        lambda s, _m: s.conflicts_since("a", 0),
    ),
    "sent": (
        lambda s, m: s.update_message(m, "sent", wa_id="W1", reason="sent", owner="a"),
        _status,
    ),
    "failed": (
        lambda s, m: s.update_message(m, "failed", attempts=1, error="x", owner="a"),
        _status,
    ),
    "retry": (
        lambda s, m: s.update_message(m, "queued", attempts=1, reason="retry", owner="a"),
        _status,
    ),
    "unknown outcome": (
        lambda s, m: s.update_message(m, "queued", outcome_unknown=True, owner="a"),
        _status,
    ),
    "expired (posted)": (
        lambda s, m: s.set_status(m, "expired", reason="expired", owner="a"),
        _status,
    ),
    "sending": (
        lambda s, m: s.update_message(m, "sending", attempts=2, owner="a"),
        _status,
    ),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("stale", ["older epoch", "no lease"])
def test_a_stale_owner_write_is_refused_and_changes_nothing(
    a_node: Node, kind: str, stale: str
) -> None:
    s = a_node.store
    write, look = KINDS[kind]
    mid = _sending(s, "a")
    before = look(s, mid)
    good = a_node.epochs["a"]
    if stale == "no lease":
        del a_node.epochs["a"]
    else:
        a_node.epochs["a"] = good - 1
    fut = write(s, mid)
    if fut is not None:
        with pytest.raises(StaleEpoch):
            fut.result(5)
    s.flush(5)
    assert look(s, mid) == before
    assert a_node.refused == [("a", None if stale == "no lease" else good - 1)]
    # Under the current epoch the same write goes through.
    a_node.epochs["a"] = good
    fut = write(s, mid)
    if fut is not None:
        fut.result(5)
    s.flush(5)
    assert look(s, mid) != before


def test_a_refused_write_leaves_the_rest_of_its_group_commit_alone(a_node: Node) -> None:
    s = a_node.store
    fencing = s.fencing
    assert fencing is not None
    mid_a, mid_b = _sending(s, "a"), _sending(s, "b")
    a_node.epochs["a"] -= 1  # "a" was taken over; "b" is still ours
    checks = fencing.checks
    release, held = hold_writer(s)
    stale = [
        s.update_message(mid_a, "sent", wa_id="WA", owner="a"),
        s.save_state("a", "online", since=T0 + 1),
        s.add_conflict("a", T0 + 1),
    ]
    ours = [
        s.update_message(mid_b, "sent", wa_id="WB", owner="b"),
        s.save_state("b", "online", since=T0 + 1),
        s.add_conflict("b", T0 + 1),
    ]
    client = s.enqueue(message("a"), max_queue=100)  # a client's send: never fenced
    release.set()
    held.result(5)
    for f in stale:
        with pytest.raises(StaleEpoch):
            f.result(5)
    for f in ours:
        f.result(5)
    rec, created = client.result(5)
    assert created and s.get_message(rec.message_id) is not None
    assert fencing.checks - checks == 1  # one statement for the whole batch, both instances
    a, b = s.get_message(mid_a), s.get_message(mid_b)
    assert a is not None and (a.status, a.wa_id) == ("sending", None)
    assert b is not None and (b.status, b.wa_id) == ("sent", "WB")
    ia, ib = s.get_instance("a"), s.get_instance("b")
    assert ia is not None and ia.state == "stopped"
    assert ib is not None and ib.state == "online"
    assert s.conflicts_since("a", 0) == [] and s.conflicts_since("b", 0) == [T0 + 1]


def test_a_batch_of_many_owner_writes_checks_each_instance_once(
    make_node: Callable[[str], Node],
) -> None:
    node = make_node("n1")
    ids = [f"i{n}" for n in range(20)]
    for iid in ids:
        node.store.create_instance(instance(iid))
    node.leases.ensure(ids)
    node.acquire(len(ids))
    fencing = node.store.fencing
    assert fencing is not None
    checks = fencing.checks
    release, held = hold_writer(node.store)
    futures = [node.store.save_state(iid, "online", since=T0 + k) for k in range(5) for iid in ids]
    release.set()
    held.result(5)
    for f in futures:
        f.result(5)
    assert fencing.checks - checks == 1
    assert all(r.state == "online" for r in node.store.list_instances())


def test_after_a_takeover_the_old_owners_late_writes_are_refused(
    make_node: Callable[[str], Node], target: str
) -> None:
    old, new = make_node("old"), make_node("new")
    old.store.create_instance(instance("a"))
    old.leases.ensure(["a"])
    old.acquire()
    mid = _sending(old.store, "a")  # in flight on the old owner
    _expire(target, "a")  # the old owner paused past its lease
    new.acquire()
    assert new.epochs["a"] == old.epochs["a"] + 1
    # The new owner's first write: the old owner's send goes back to the queue, same id.
    assert new.store.recover_sending("a") == 1
    # The old owner wakes up and reports what it did before the pause.
    late = [
        old.store.update_message(mid, "sent", wa_id="W-old", owner="a"),
        old.store.save_state("a", "stopped", since=T0 + 9, reason="closed"),
        old.store.add_conflict("a", T0 + 9),
        old.store.log_event("instance.a.state", {"state": "stopped"}, owner="a"),
    ]
    for f in late:
        with pytest.raises(StaleEpoch):
            f.result(5)
    assert old.refused and all(r == ("a", old.epochs["a"]) for r in old.refused)
    rec = new.store.get_message(mid)
    assert rec is not None and (rec.status, rec.outcome_unknown) == ("queued", True)
    # The new owner resends it with the same id and its outcome is kept.
    assert new.store.update_message(mid, "sending", owner="a").result(5)
    assert new.store.update_message(mid, "sent", wa_id="W-new", owner="a").result(5)
    new.store.save_state("a", "online", since=T0 + 10).result(5)
    rec = new.store.get_message(mid)
    assert rec is not None and (rec.status, rec.wa_id) == ("sent", "W-new")
    inst = new.store.get_instance("a")
    assert inst is not None and inst.state == "online"
    assert new.store.conflicts_since("a", 0) == []
    assert new.store.recent_events(prefix="instance.a.") == []
    assert new.refused == []


def test_a_node_whose_lease_is_gone_requeues_nothing(
    make_node: Callable[[str], Node], target: str
) -> None:
    node = make_node("n1")
    node.store.create_instance(instance("a"))
    node.leases.ensure(["a"])
    node.acquire()
    mid = _sending(node.store, "a")
    _expire(target, "a")
    with pytest.raises(StaleEpoch):
        node.store.recover_sending("a")
    rec = node.store.get_message(mid)
    assert rec is not None and rec.status == "sending"


def test_a_write_that_passed_the_fence_holds_off_a_takeover_until_it_commits(
    a_node: Node, target: str
) -> None:
    import psycopg

    inside, release = threading.Event(), threading.Event()

    def slow(tx: Any) -> None:
        inside.set()
        release.wait(5)

    fut = a_node.store.writer.submit(slow, owner="a")
    assert inside.wait(5)  # past the fence, transaction open
    with psycopg.connect(target, autocommit=True) as c:
        c.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            c.execute(
                "UPDATE leases SET owner = 'thief', epoch = epoch + 1 WHERE instance_id = 'a'"
            )
        release.set()
        fut.result(5)
        c.execute("UPDATE leases SET owner = 'thief', epoch = epoch + 1 WHERE instance_id = 'a'")
    with pytest.raises(StaleEpoch):
        a_node.store.save_state("a", "online", since=T0 + 1).result(5)


def test_a_send_started_without_naming_its_owner_is_fenced_all_the_same(a_node: Node) -> None:
    s = a_node.store
    rec, _ = s.enqueue(message("a"), max_queue=10).result(5)
    a_node.epochs["a"] -= 1
    with pytest.raises(StaleEpoch):
        s.update_message(rec.message_id, "sending").result(5)
    got = s.get_message(rec.message_id)
    assert got is not None and got.status == "queued"


def test_an_owner_write_for_another_instances_message_is_refused(a_node: Node) -> None:
    s = a_node.store
    mid = _sending(s, "b")
    with pytest.raises(Exception, match="not instance a's"):
        s.update_message(mid, "sent", owner="a").result(5)


def test_writes_that_are_not_an_owners_are_never_fenced(a_node: Node) -> None:
    """A client's send and cancel, an operator's retry and purge, received messages and
    receipts, desired state: none is refused for a stale epoch (see docs/design.md)."""
    s = a_node.store
    a_node.epochs.clear()  # no lease at all
    rec, created = s.enqueue(message("a"), max_queue=10).result(5)
    assert created
    assert s.update_message(rec.message_id, "cancelled", only_if={"queued"}).result(5)
    s.set_desired("a", "stopped").result(5)
    row, new = s.add_incoming(
        "a", wa_id="in1", chat="c@s.whatsapp.net", sender="x", sent_at=T0
    ).result(5)
    assert new and row.wa_id == "in1"
    assert s.record_receipt(rec.message_id, "read", T0 + 1).result(5)
    assert s.cancel_pending("a") == []
    assert s.requeue_failed("a", None, max_queue=10) == []
    s.log_event("daemon.alarm", {"instance_id": "a", "kind": "x"}).result(5)
    assert a_node.refused == []


def test_renewals_and_group_commits_never_deadlock(make_node: Callable[[str], Node]) -> None:
    """A renew updates every lease of the node while the writer's fence locks them FOR SHARE:
    both lock in instance order, so neither waits on the other in a cycle (unordered, this
    load deadlocked within a second)."""
    import random

    from waz_actors.cluster.leases import LeaseStore

    node = make_node("n1")
    ids = [f"i{k:03d}" for k in range(120)]
    for iid in ids:
        node.store.create_instance(instance(iid))
    node.leases.ensure(ids)
    node.acquire(len(ids))
    errors: list[str] = []
    done = threading.Event()

    def renew() -> None:
        other = LeaseStore(node.leases.url, "n1", 30)
        held = list(node.epochs.items())
        try:
            for _ in range(40):
                random.shuffle(held)
                try:
                    assert len(other.renew(dict(held))) == len(held)
                except Exception as e:
                    errors.append(f"renew: {e}")
        finally:
            other.close()
            done.set()

    t = threading.Thread(target=renew)
    t.start()
    batches = 0
    while not done.is_set() or batches < 5:
        order = ids[:]
        random.shuffle(order)
        for f in [node.store.save_state(i, "online", since=T0 + batches) for i in order]:
            try:
                f.result(10)
            except Exception as e:
                errors.append(f"write: {e}")
        batches += 1
    t.join()
    assert errors == []


def test_a_writer_stalled_inside_a_transaction_does_not_keep_lease_rows_locked(
    make_store: Callable[..., Store], target: str
) -> None:
    """A writer that stops talking mid-transaction (a partition; here an operation that blocks)
    holds its fenced lease rows FOR SHARE, which every acquisition skips: the server ends its
    session after `WRITER_IDLE_IN_TRANSACTION_MS`, so the lease can be taken over once expired,
    and the stalled batch fails instead of committing."""
    from waz_actors.cluster.leases import LeaseStore
    from waz_actors.store.pg import WRITER_IDLE_IN_TRANSACTION_MS

    s = make_store()
    mine = LeaseStore(target, "n1", 1.0)  # a 1 s lease
    other = LeaseStore(target, "n2", 30)
    try:
        s.create_instance(instance("a"))
        mine.ensure(["a"])
        epochs = {x.instance_id: x.epoch for x in mine.acquire(1)}
        s.fence_writes(epochs.get, lambda i, e: None)
        inside, release = threading.Event(), threading.Event()

        def stalled(tx: Any) -> None:
            inside.set()
            release.wait(30)

        t0 = time.monotonic()
        fut = s.writer.submit(stalled, owner="a")  # fenced: row `a` is locked FOR SHARE from now on
        assert inside.wait(5)
        taken = wait_until(
            lambda: other.acquire(1), timeout=20, what="the lease taken after the session ended"
        )
        took = time.monotonic() - t0
        assert [x.instance_id for x in taken] == ["a"]
        # Expired after 1 s, but locked until the server ended the stalled session.
        assert took >= WRITER_IDLE_IN_TRANSACTION_MS / 1000 * 0.9, took
        release.set()
        with pytest.raises(Exception):  # noqa: B017 - the batch's connection is gone
            fut.result(10)
        # The writer reconnects at its next transaction; the new owner's epoch fences it out.
        with pytest.raises(StaleEpoch):
            s.writer.submit(lambda tx: None, owner="a").result(10)
    finally:
        release.set()
        mine.close()
        other.close()
