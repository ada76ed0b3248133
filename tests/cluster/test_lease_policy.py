"""The pure lease rules, driven by hand with no database and no threads."""

from __future__ import annotations

import pytest

from waz_actors.cluster.lease_policy import (
    LeaseKeeper,
    LeaseTiming,
    Placement,
    PlacementPlan,
    PlacementView,
    fair_share,
)

T = LeaseTiming(ttl=30.0, renew_every=5.0, margin=10.0, takeover_delay=3.0)


def test_timing_refuses_a_fence_margin_that_leaves_no_second_renew() -> None:
    with pytest.raises(ValueError, match="lease_ttl"):
        LeaseTiming(ttl=10.0, renew_every=4.0, margin=3.0)
    with pytest.raises(ValueError):
        LeaseTiming(ttl=10.0, renew_every=0.0, margin=1.0)


def test_fence_deadline_counts_from_the_send_time_of_the_last_good_renew() -> None:
    k = LeaseKeeper(T)
    k.acquired("a", 1, sent_at=100.0)
    assert k.deadline("a") == 120.0  # 100 + ttl 30 - margin 10
    assert k.to_fence(119.9) == []
    k.renewed({"a"}, sent_at=105.0)
    assert k.deadline("a") == 125.0
    # A late answer to an older round never moves the deadline back.
    k.renewed({"a"}, sent_at=101.0)
    assert k.deadline("a") == 125.0
    assert k.to_fence(125.0) == ["a"]


def test_renewals_that_fail_fence_before_the_database_expiry() -> None:
    """Renew rounds every 5 s stop succeeding at t=110: the lease expires in the database no
    earlier than 110 + 30 = 140 (it was renewed by a statement sent at 110); the node fences
    at 130, margin 10 before."""
    k = LeaseKeeper(T)
    k.acquired("a", 1, sent_at=100.0)
    now = 100.0
    while now < 110.0:
        now += 5.0
        k.renewed({"a"}, sent_at=now)
    last_ok = now
    fenced_at = None
    while fenced_at is None:
        now += 0.5
        if k.to_fence(now):
            fenced_at = now
    assert fenced_at == last_ok + T.ttl - T.margin
    assert fenced_at < last_ok + T.ttl  # the earliest the database can expire it


def test_renew_rounds_are_due_every_renew_every() -> None:
    k = LeaseKeeper(T)
    assert k.renew_due(0.0)
    k.round_started(0.0)
    assert not k.renew_due(4.9)
    assert k.renew_due(5.0)


def test_the_next_renew_is_due_renew_every_after_the_last_round_started() -> None:
    k = LeaseKeeper(LeaseTiming(ttl=30, renew_every=5, margin=10))
    assert k.next_renew(3.0) == 3.0  # never renewed: due now
    k.round_started(10.0)
    assert k.next_renew(11.0) == 15.0
    assert not k.renew_due(14.9) and k.renew_due(15.0)
    assert k.next_renew(20.0) == 20.0  # overdue: now, not in the past


def test_placement_says_when_the_budget_left_work_for_a_later_round() -> None:
    p = Placement(rate=10.0, burst=10)
    first = p.plan(PlacementView(instances=100, live_nodes=2, mine=0, draining=False), 0.0)
    assert (first.acquire, first.more) == (10, True)  # share 50: 40 left after this budget
    assert p.gap == 0.2  # come back when the bucket refilled some (not at the next renew)
    assert Placement(rate=2.0, burst=2).gap == 0.5  # at least one lease's worth
    last = p.plan(PlacementView(100, 2, 45, False), 10.0)
    assert (last.acquire, last.more) == (5, False)
    assert p.plan(PlacementView(100, 2, 50, False), 20.0) == PlacementPlan()
    drain = Placement(rate=5.0, burst=5).plan(PlacementView(30, 2, 12, True), 0.0)
    assert (drain.release, drain.more) == (5, True)


def test_dropped_leases_are_not_renewed_or_fenced() -> None:
    k = LeaseKeeper(T)
    k.acquired("a", 3, 0.0)
    k.acquired("b", 1, 0.0)
    k.drop("a")
    k.renewed({"a"}, 10.0)
    assert k.held() == {"b": 1}
    assert k.to_fence(100.0) == ["b"]
    assert k.next_deadline() == 20.0


def test_fair_share() -> None:
    assert fair_share(30, 3) == 10
    assert fair_share(31, 3) == 11
    assert fair_share(5, 0) == 5
    assert fair_share(0, 3) == 0


def test_placement_takes_its_share_at_a_bounded_rate() -> None:
    p = Placement(rate=10.0, burst=10)
    got = 0
    now = 0.0
    rounds = 0
    while got < 40:
        plan = p.plan(PlacementView(instances=120, live_nodes=3, mine=got, draining=False), now)
        assert plan.release == 0
        assert plan.acquire <= 10
        got += plan.acquire
        now += 0.5
        rounds += 1
    assert got == 40  # the fair share, not more
    assert rounds >= 7  # 40 at 10 a second took about 3.5 s, not one round
    assert p.plan(PlacementView(120, 3, 40, False), now + 10).acquire == 0


def test_placement_gives_back_above_the_share_and_all_when_draining() -> None:
    p = Placement(rate=5.0, burst=5)
    assert p.plan(PlacementView(30, 3, 30, False), 0.0).release == 5
    assert p.plan(PlacementView(30, 3, 25, False), 1.0).release == 5
    assert p.plan(PlacementView(30, 3, 10, False), 10.0).release == 0
    d = Placement(rate=5.0, burst=5)
    assert d.plan(PlacementView(30, 2, 10, True), 0.0).release == 5
    assert d.plan(PlacementView(30, 2, 5, True), 0.2).release == 1  # the bucket refills slowly


def test_which_commands_go_to_the_owner() -> None:
    from waz_actors.cluster.forward import needs_owner

    assert needs_owner("instance.get", {"instance_id": "a"}) == "a"
    # any node commits a send to the shared store and wakes the owner (store/messages.py)
    assert needs_owner("message.send", {"instance_id": "a", "to": "1"}) is None
    assert needs_owner("queue.list", {"instance_id": "a"}) == "a"
    for local in ("instance.create", "instance.list", "daemon.status", "ping"):
        assert needs_owner(local, {"instance_id": "a"}) is None
    assert needs_owner("cluster.drain", {"node_id": "a"}) is None
    assert needs_owner("events.subscribe", {"instance_id": "a"}) is None
    assert needs_owner("message.get", {"message_id": "m"}) is None  # the shared store answers


@pytest.mark.parametrize("rate", [0.6, 0.8, 0.9, 1.0, 1.1, 1.5])
def test_a_fence_precedes_the_database_expiry_for_clock_drift_within_the_margin(
    rate: float,
) -> None:
    """The node's clock runs `rate` times as fast as the database's. A renew sent at true time
    T executes at T + d (d >= 0, unknown), so the database expires the lease at T + d + ttl.
    The node fences at its own sent_at + ttl - margin (plus up to one watchdog tick); in true
    time that is T + (ttl - margin + tick) / rate, which stays before T + ttl as long as the
    drift is within the margin: rate > (ttl - margin + tick) / ttl."""
    timing = LeaseTiming(ttl=30.0, renew_every=5.0, margin=10.0)
    tick = min(timing.margin / 4, timing.renew_every / 2)
    k = LeaseKeeper(timing)
    true_send = 50.0
    k.acquired("a", 1, sent_at=true_send * rate)  # the node's clock reading at the send
    db_expiry = true_send + 0.0 + timing.ttl  # d = 0: the earliest possible expiry
    local = true_send * rate
    while not k.to_fence(local):
        local += tick  # the watchdog wakes once a tick
    true_fence = local / rate
    safe = rate > (timing.ttl - timing.margin + tick) / timing.ttl
    assert safe == (rate >= 0.8)  # 0.6 drifts more than a 10 s margin on a 30 s ttl covers
    if safe:
        assert true_fence < db_expiry
    else:
        assert true_fence > db_expiry  # why the margin must cover the drift
