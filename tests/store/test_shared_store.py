"""The store shared by a cluster's daemons (issue 16): each instance's crash recovery on its
own, the pending counters read from the database on PostgreSQL (queue.max_size holds across
nodes), the owner woken by a send accepted on any node, and one SQLite daemon fencing nothing
(the fence itself: test_store_fencing.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.store.store_helpers import instance, message
from tests.waiting import wait_until
from waz_actors.errors import QueueFull
from waz_actors.store import Store


def test_recover_sending_of_one_instance_leaves_the_others_in_flight(
    make_store: Callable[..., Store],
) -> None:
    s = make_store()
    for iid in ("a", "b"):
        s.create_instance(instance(iid))
    sent = {}
    for iid in ("a", "b"):
        rec, _ = s.enqueue(message(iid), max_queue=10).result()
        s.update_message(rec.message_id, "sending").result()
        sent[iid] = rec.message_id
    assert s.recover_sending("a") == 1
    a, b = s.get_message(sent["a"]), s.get_message(sent["b"])
    assert a is not None and b is not None
    assert (a.status, a.outcome_unknown) == ("queued", True)  # resent with the same id
    assert b.status == "sending"  # another node's send in flight: untouched
    assert s.pending_count("a") == 1 and s.pending_count("b") == 1


@pytest.mark.parametrize("backend", ["postgres"])
def test_two_daemons_share_the_pending_counts_and_the_queue_cap(
    make_store: Callable[..., Store],
) -> None:
    node1, node2 = make_store(), make_store()
    node1.create_instance(instance("a"))
    for _ in range(3):
        node1.enqueue(message("a"), max_queue=3).result()
    # node2 never saw those inserts; its counter is read from the database where it matters:
    with pytest.raises(QueueFull):
        node2.enqueue(message("a"), max_queue=3).result()
    node2.recover_sending("a")  # what a node runs when it takes the instance's lease
    assert node2.pending_count("a") == 3
    assert len(node2.pending_messages("a")) == 3


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_send_wakes_the_owner_after_its_commit(
    make_store: Callable[..., Store], target: str
) -> None:
    from waz_actors.cluster.leases import LeaseStore
    from waz_actors.cluster.wake import WakeListener

    s = make_store()  # its migrations create the cluster's tables (pg_schema _PG_V_CLUSTER)
    s.create_instance(instance("a"))
    s.create_instance(instance("b"))
    owner = LeaseStore(target, "node-b", 30)
    owner.ensure(["a", "b"])
    mine = [a.instance_id for a in owner.acquire(1)]
    woken: list[str] = []
    listener = WakeListener(target, "node-b", woken.append)
    listener.start()
    try:
        wait_until(listener.listening.is_set, what="listening")
        sent = {iid: s.enqueue(message(iid), max_queue=10).result()[0] for iid in ("a", "b")}
        # The payload names the message: the owner reads that row, not its whole queue.
        want = [f"{iid} {sent[iid].message_id}" for iid in mine]
        wait_until(lambda: woken == want, what=f"{want} woken, got {woken}")
        # Accepted on the owner itself: it is told in memory (Fleet.submit), never woken.
        s.wake_others("node-b")
        s.enqueue(message(mine[0]), max_queue=10).result()
        s.wake_others("node-a")  # accepted on another node: the owner is woken again
        third = s.enqueue(message(mine[0]), max_queue=10).result()[0]
        wait_until(lambda: len(woken) == 2, what=f"the third woken, got {woken}")
        assert woken[1] == f"{mine[0]} {third.message_id}"
    finally:
        listener.stop()
        owner.close()


@pytest.mark.sqlite_only
def test_one_sqlite_daemon_fences_nothing(store: Store) -> None:
    """One daemon on one file holds no leases: owner writes are plain writes."""
    with pytest.raises(RuntimeError, match="PostgreSQL"):
        store.fence_writes(lambda _iid: None)
    assert store.fencing is None
    rec, _ = store.enqueue(message("i1"), max_queue=10).result()
    assert store.update_message(rec.message_id, "sending", owner="i1").result()
    store.save_state("i1", "online", since=1.0).result()
    got = store.get_instance("i1")
    assert got is not None and got.state == "online"
