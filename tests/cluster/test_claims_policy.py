"""Claims as logic: a hand-driven clock and an in-memory claim table with the SQL's rules
(free, released or expired keys may be taken; renew needs owner, epoch and no expiry)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg
import pytest

from waz_actors.cluster.claims import Claims, campaign_key, webhook_key
from waz_actors.cluster.lease_policy import LeaseTiming

T = LeaseTiming(ttl=10.0, renew_every=2.0, margin=3.0)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class FakeTable:
    """The claims table on a database clock of its own (`db`), shared by several nodes."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.rows: dict[str, tuple[str | None, int, float]] = {}
        self.down = False

    def store(self, node_id: str) -> FakeStore:
        return FakeStore(self, node_id)


class FakeStore:
    timeout = 1.0

    def __init__(self, table: FakeTable, node_id: str) -> None:
        self.t = table
        self.node_id = node_id
        self.ttl = T.ttl

    def _up(self) -> None:
        if self.t.down:
            raise psycopg.OperationalError("partitioned")

    def take(self, key: str) -> int | None:
        self._up()
        owner, epoch, exp = self.t.rows.get(key, (None, 0, -1.0))
        if owner is not None and exp > self.t.clock():
            return None
        self.t.rows[key] = (self.node_id, epoch + 1, self.t.clock() + self.ttl)
        return epoch + 1

    def renew(self, held: Mapping[str, int]) -> set[str]:
        self._up()
        out = set()
        for k, e in held.items():
            owner, epoch, exp = self.t.rows.get(k, (None, 0, -1.0))
            if owner == self.node_id and epoch == e and exp > self.t.clock():
                self.t.rows[k] = (owner, epoch, self.t.clock() + self.ttl)
                out.add(k)
        return out

    def release(self, held: Mapping[str, int]) -> set[str]:
        self._up()
        out = set()
        for k, e in held.items():
            owner, epoch, _ = self.t.rows.get(k, (None, 0, -1.0))
            if owner == self.node_id and epoch == e:
                self.t.rows[k] = (None, epoch, -1.0)
                out.add(k)
        return out

    def unclaimed(self, keys: Iterable[str]) -> list[str]:
        self._up()
        now = self.t.clock()
        return [k for k in keys if (r := self.t.rows.get(k)) is None or r[0] is None or r[2] <= now]

    def forget(self, keys: Iterable[str]) -> None:
        for k in keys:
            self.t.rows.pop(k, None)

    def close(self) -> None:
        pass


def _pair() -> tuple[Clock, FakeTable, Claims, Claims]:
    clock = Clock()
    table = FakeTable(clock)
    a = Claims(table.store("a"), T, clock=clock)  # type: ignore[arg-type]
    b = Claims(table.store("b"), T, clock=clock)  # type: ignore[arg-type]
    return clock, table, a, b


def test_one_holder_per_key_and_release_frees_it_at_once() -> None:
    _, _, a, b = _pair()
    assert a.try_claim("campaign:c1")
    assert a.try_claim("campaign:c1")  # held: yes again, no new epoch
    assert not b.try_claim("campaign:c1")
    assert a.holds("campaign:c1") and not b.holds("campaign:c1")
    assert b.unclaimed(["campaign:c1", "campaign:c2"]) == ["campaign:c2"]
    a.release("campaign:c1")
    assert not a.holds("campaign:c1")
    assert b.try_claim("campaign:c1")
    assert b.epoch("campaign:c1") == 2  # every take adds one
    assert a.epoch("campaign:c1") is None


def test_a_holder_that_cannot_renew_lets_go_before_anyone_may_take_it() -> None:
    clock, table, a, b = _pair()
    lost: list[str] = []
    a.watch("campaign:", lost.append)
    a.watch("webhook:", lambda k: lost.append("W" + k))
    assert a.try_claim("campaign:c1") and a.try_claim("webhook:w1")
    clock.t += 2.0
    a.renew()
    confirmed = clock.t
    table.down = True  # a partition: a's renewals fail from now on
    for _ in range(3):
        clock.t += 2.0
        with pytest.raises(psycopg.Error):
            a.renew()
        a.check(clock.t)
    # confirmed + ttl - margin = +7: at +6 a still holds both, nobody can take them.
    assert a.holds("campaign:c1") and lost == []
    clock.t = confirmed + T.ttl - T.margin  # the fence deadline
    assert not a.holds("campaign:c1")  # holds() says no even before the watchdog ran
    assert sorted(a.check(clock.t)) == ["campaign:c1", "webhook:w1"]
    assert sorted(lost) == ["Wwebhook:w1", "campaign:c1"]
    assert a.held() == {} and a.lost == 2
    table.down = False
    assert not b.try_claim("campaign:c1")  # the database still says a's: margin left
    clock.t = confirmed + T.ttl
    assert b.try_claim("campaign:c1") and b.try_claim("webhook:w1")


def test_a_renew_finding_the_claim_taken_tells_the_watchers() -> None:
    clock, table, a, _ = _pair()
    lost: list[str] = []
    a.watch("campaign:", lost.append)
    assert a.try_claim("campaign:c1")
    table.rows["campaign:c1"] = ("b", 7, clock.t + 10)  # e.g. an operator's repair
    a.renew()
    assert lost == ["campaign:c1"] and not a.holds("campaign:c1")
    a.check(clock.t + 100)  # already dropped: told once
    assert lost == ["campaign:c1"]


def test_an_answer_that_comes_back_too_late_is_not_used() -> None:
    clock = Clock()
    table = FakeTable(clock)
    store = table.store("a")
    real_take = store.take

    def slow_take(key: str) -> int | None:
        epoch = real_take(key)
        clock.t += T.ttl - T.margin  # held up in the network this long
        return epoch

    store.take = slow_take  # type: ignore[method-assign]
    a = Claims(store, T, clock=clock)  # type: ignore[arg-type]
    assert not a.try_claim("campaign:c1")
    assert a.held() == {}


def test_errors_and_bad_keys() -> None:
    clock, table, a, _ = _pair()
    with pytest.raises(ValueError):
        a.try_claim("")
    table.down = True
    assert not a.try_claim("campaign:c1")  # the database is away: not claimed, no raise
    table.down = False
    assert a.try_claim("campaign:c1")
    table.down = True
    a.release_all()  # cannot reach it: dropped here anyway, it expires there
    assert not a.holds("campaign:c1")
    table.down = False
    assert not a.unclaimed(["campaign:c1"])
    clock.t += T.ttl
    assert a.unclaimed(["campaign:c1"]) == ["campaign:c1"]
    assert campaign_key("c1") == "campaign:c1" and webhook_key("w") == "webhook:w"


def test_release_all_and_forget() -> None:
    _, table, a, b = _pair()
    for k in ("campaign:1", "campaign:2", "webhook:3"):
        assert a.try_claim(k)
    assert a.release_all() == 3
    assert a.held() == {}
    assert b.try_claim("campaign:1")
    b.forget(["campaign:1"])
    assert "campaign:1" not in table.rows and not b.holds("campaign:1")
