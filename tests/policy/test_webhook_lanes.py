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
