"""policy/webhook_lanes.py: one head per (webhook, instance), in seq order; retries, expiry."""

from __future__ import annotations

from waz_actors.policy.webhook_lanes import Due, Lanes


def due(seq: int, hook: str = "w1", lane: str = "i1", next_at: float = 0.0) -> Due:
    return Due(
        seq, hook, f"evt_{seq}", "message.status", lane, 0, next_at, float(seq), "u", "s", "{}"
    )


def test_heads_in_order_per_lane() -> None:
    lanes = Lanes(cap=10)
    lanes.add([due(1), due(2, lane="i2"), due(3), due(4, hook="w2")])
    assert lanes.loaded == 4 and lanes.room() == 6
    heads = lanes.take(10.0, busy=set(), held=set(), limit=10)
    assert [d.seq for d in heads] == [1, 2, 4]  # 3 waits behind 1 (same webhook, same lane)
    assert [d.seq for d in lanes.take(10.0, busy={"w1 i1"}, held={"w2"}, limit=10)] == [2]
    lanes.settle(heads[0], retry_at=None)
    assert [d.seq for d in lanes.take(10.0, set(), set(), 10)] == [3, 2, 4]


def test_a_retry_keeps_its_place_and_waits() -> None:
    lanes = Lanes(cap=10)
    lanes.add([due(1), due(2)])
    (head,) = lanes.take(0.0, set(), set(), 10)
    lanes.settle(head, retry_at=5.0)
    assert lanes.take(4.0, set(), set(), 10) == []
    assert lanes.next_at(set(), set()) == 5.0
    (again,) = lanes.take(5.0, set(), set(), 10)
    assert again.seq == 1 and again.attempts == 1


def test_expiry_and_a_stale_settle() -> None:
    lanes = Lanes(cap=10)
    lanes.add([due(1), due(2), due(3, lane="i2")])
    gone = lanes.expire(cutoff=2.5, busy={"w1 i2"})
    assert [d.seq for d in gone] == [1, 2] and lanes.count == 1
    lanes.settle(due(1), retry_at=None)  # no longer there: ignored
    assert lanes.count == 1
    lanes.reset()
    assert lanes.count == 0 and lanes.loaded == 0 and lanes.next_at(set(), set()) is None


def look(lanes: Lanes, store: list[Due], batch: int) -> None:
    """One look of the worker: the refills up to `loaded`, then the next rows in seq order."""
    upto = lanes.loaded
    for hook, after, limit in lanes.refills():
        got = [d for d in store if d.webhook_id == hook and after < d.seq <= upto]
        lanes.refill(hook, got[:limit], limit, upto)
    lanes.add([d for d in store if d.seq > upto][:batch])


def test_a_stuck_webhook_holds_its_share_only() -> None:
    """w1's receiver answers nothing: its rows stop at its share, w2's keep flowing, in
    order, though w1 has far more rows waiting than the memory holds."""
    lanes = Lanes(cap=10, per_webhook=4, floor=2)
    store = [due(s, hook="w1" if s % 3 else "w2") for s in range(1, 301)]
    sent: list[int] = []
    for _ in range(200):
        look(lanes, store, batch=20)
        for d in lanes.take(0.0, set(), held={"w1"}, limit=100):
            sent.append(d.seq)
            lanes.settle(d, retry_at=None)
        assert lanes.counts.get("w1", 0) <= 4 and lanes.count <= 10
    assert sent == [s for s in range(1, 301) if s % 3 == 0]  # every w2 row, in order
    assert lanes.counts == {"w1": 4} and "w2" not in lanes.behind


def test_a_webhook_left_behind_is_refilled_in_order() -> None:
    lanes = Lanes(cap=10, per_webhook=4, floor=2)
    store = [due(s, lane=f"i{s % 2}") for s in range(1, 13)]
    lanes.add(store)
    assert lanes.counts == {"w1": 4} and lanes.behind == {"w1": 4} and lanes.loaded == 12
    assert lanes.refills() == []  # no room yet: nothing read again
    sent = []
    while lanes.count:
        for d in lanes.take(0.0, set(), set(), 100):
            sent.append(d.seq)
            lanes.settle(d, retry_at=None)
        for hook, after, limit in lanes.refills():
            got = [d for d in store if d.webhook_id == hook and after < d.seq <= lanes.loaded]
            lanes.refill(hook, got[:limit], limit, upto=lanes.loaded)
    assert sorted(sent) == list(range(1, 13)) and lanes.behind == {}
    for lane in ("i0", "i1"):  # each lane kept its order across the refills
        mine = [s for s in sent if f"i{s % 2}" == lane]
        assert mine == sorted(mine)


def test_a_full_memory_still_lets_each_webhook_hold_its_floor() -> None:
    lanes = Lanes(cap=6, per_webhook=6, floor=2)
    lanes.add([due(s, hook="w1") for s in range(1, 9)])  # w1 fills the memory
    assert lanes.count == 6 and lanes.behind == {"w1": 6}
    lanes.add([due(s, hook="w2") for s in range(9, 13)])
    assert lanes.counts == {"w1": 6, "w2": 2} and lanes.behind == {"w1": 6, "w2": 10}
    assert lanes.refills() == []  # w2 holds its floor, w1 its all: wait for room


def test_rows_read_back_after_their_outcome_take_the_outcome() -> None:
    """A reload reads rows whose attempt ended during the read (not written yet): done ones
    stay out, a retried one waits its backoff; the others and the refills are as read."""
    lanes = Lanes(10)
    settled: dict[int, float | None] = {1: None, 2: 50.0}
    lanes.add([due(1), due(2, lane="i2"), due(3, lane="i3")], settled)
    assert lanes.loaded == 3 and lanes.count == 2
    assert [d.seq for d in lanes.take(10.0, (), (), 10)] == [3]
    assert [(d.seq, d.attempts) for d in lanes.take(50.0, (), (), 10)] == [(2, 1), (3, 0)]
    lanes.behind["w2"] = 0
    lanes.refill("w2", [due(4, hook="w2"), due(5, hook="w2")], 10, 5, {4: None})
    assert [d.seq for d in lanes.take(50.0, (), (), 10)] == [2, 3, 5]
    assert "w2" not in lanes.behind  # caught up: fewer rows than asked, whatever was dropped
