"""Campaign writes on a store shared by several daemons (PostgreSQL): two feeders racing over
the same recipients can never queue one twice (the idempotency key is unique per tenant), a
feeder whose claim is stale is refused, counters are read from the database before the cap,
and the instance's owner is woken by a campaign message queued on another node."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.store.store_helpers import instance, message
from tests.waiting import wait_until
from waz_actors.errors import Exists
from waz_actors.store import Store
from waz_actors.store.campaigns import Assignment, CampaignRecord, idempotency_key

pytestmark = pytest.mark.parametrize("backend", ["postgres"])

ROWS = 30


def _campaign(cid: str = "c1") -> CampaignRecord:
    return CampaignRecord(
        campaign_id=cid,
        tenant="t1",
        name="blast",
        state="running",
        instance_ids=("a", "b"),
        text="hi",
        media=None,
        start_at=None,
        window=None,
        delay_min=0.0,
        delay_max=0.0,
        check_numbers=False,
        duplicates=0,
        reason=None,
        created_at=1.0,
        updated_at=1.0,
    )


def _setup(s: Store) -> None:
    s.create_instance(instance("a"))
    s.create_instance(instance("b"))
    s.campaigns.create(_campaign()).result(5)
    rows = [(f"62812{k:08d}", {}, "hi") for k in range(ROWS)]
    s.campaigns.add_recipients("c1", rows).result(5)


def _plan(s: Store, iid: str) -> list[Assignment]:
    """What a feeder builds from the pending recipients it read (attempt 0 keys)."""
    return [
        Assignment(
            r.seq,
            message(iid, to=r.number, idempotency_key=idempotency_key("c1", r.number, r.attempt)),
        )
        for r in s.campaigns.next_pending("c1", ROWS)
    ]


def test_two_feeders_racing_never_queue_a_recipient_twice(
    make_store: Callable[..., Store],
) -> None:
    """Without claims two nodes could both feed a campaign (the state before claims): the
    unique (tenant, idempotency_key) index lets only one message per recipient attempt in."""
    node1, node2 = make_store(), make_store()
    _setup(node1)
    plans = {"1": _plan(node1, "a"), "2": _plan(node2, "b")}  # both read the same recipients
    barrier = threading.Barrier(2)
    answers: dict[str, object] = {}

    def feed(name: str, s: Store) -> None:
        barrier.wait()
        try:
            answers[name] = s.campaigns.assign(plans[name], max_queue=1000).result(30)
        except Exists as e:  # the loser of a racing insert: its whole batch is refused
            answers[name] = e

    threads = [threading.Thread(target=feed, args=a) for a in (("1", node1), ("2", node2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for name in ("1", "2"):  # a refused batch is fed again from what is pending then
        if isinstance(answers[name], Exists):
            answers[name] = make_store().campaigns.assign(plans[name], max_queue=1000).result(30)
    node1.flush(5)
    with node1._db.read() as c:  # type: ignore[attr-defined]
        per_number = dict(
            c.execute("SELECT recipient, count(*) FROM messages GROUP BY recipient").fetchall()
        )
    assert len(per_number) == ROWS and set(per_number.values()) == {1}
    counts = node1.campaigns.counts("c1")
    assert counts["queued"] == ROWS and counts["pending"] == 0
    every = [x for a in answers.values() for x in a]  # type: ignore[attr-defined]
    assert every.count("queued") == ROWS and every.count("existing") == ROWS


def test_a_stale_claim_is_refused_and_the_owner_is_woken(
    make_store: Callable[..., Store], target: str
) -> None:
    from waz_actors.cluster.claims import Claims, ClaimStore
    from waz_actors.cluster.lease_policy import LeaseTiming
    from waz_actors.cluster.leases import LeaseStore
    from waz_actors.cluster.wake import WakeListener

    s = make_store()
    _setup(s)
    timing = LeaseTiming(ttl=30, renew_every=5, margin=10)
    mine = Claims(ClaimStore(target, "n1", 30), timing)
    other = Claims(ClaimStore(target, "n2", 30), timing)
    owner = LeaseStore(target, "node-b", 30)
    listener = WakeListener(target, "node-b", woken := [])  # type: ignore[var-annotated]
    try:
        owner.ensure(["a", "b"])
        owner.acquire(2)
        listener.on_wake = woken.append
        listener.start()
        wait_until(listener.listening.is_set, what="listening")
        assert mine.try_claim("campaign:c1")
        stale = ("campaign:c1", mine.epoch("campaign:c1"))
        mine.release("campaign:c1")
        assert other.try_claim("campaign:c1")
        with pytest.raises(Exception, match="stale claim epoch"):
            s.campaigns.assign(_plan(s, "a"), max_queue=1000, fence=stale).result(10)  # type: ignore[arg-type]
        assert s.campaigns.counts("c1")["queued"] == 0
        current = ("campaign:c1", other.epoch("campaign:c1"))
        got = s.campaigns.assign(_plan(s, "a")[:3], max_queue=1000, fence=current).result(10)  # type: ignore[arg-type]
        assert got == ["queued"] * 3
        wait_until(lambda: woken == ["a"], what=f"a's owner woken once, got {woken}")
        # Another node filled b's queue meanwhile: the cap is checked on the database's count.
        s2 = make_store()
        for _ in range(4):
            s2.enqueue(message("b"), max_queue=1000).result(10)
        got = s.campaigns.assign(_plan(s, "b")[:3], max_queue=5, fence=current).result(10)  # type: ignore[arg-type]
        assert got == ["queued", "full", "full"]
    finally:
        listener.stop()
        owner.close()
        mine.close()
        other.close()
