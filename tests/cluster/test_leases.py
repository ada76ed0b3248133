"""The lease SQL against the real local PostgreSQL: acquire, renew, expire, takeover with
epochs, release, and writes with a stale epoch refused by the database."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from tests.waiting import wait_until
from waz_actors.cluster.leases import LeaseStore, fence, is_stale_epoch


def _store(url: str, node: str, ttl: float = 30.0) -> LeaseStore:
    s = LeaseStore(url, node, ttl)
    s.migrate()
    return s


def test_acquire_renew_expire_takeover_with_growing_epochs(pg_url: str) -> None:
    a = _store(pg_url, "a", ttl=0.5)
    b = _store(pg_url, "b", ttl=0.5)
    a.ensure(["i1", "i2"])
    got = a.acquire(10)
    assert [(x.instance_id, x.epoch, x.previous_owner) for x in got] == [
        ("i1", 1, None),
        ("i2", 1, None),
    ]
    assert b.acquire(10) == []  # held and fresh: nothing for b
    assert a.renew({"i1": 1, "i2": 1}) == {"i1", "i2"}
    # a stops renewing i1 only; it expires on the database clock, then b takes it over.
    deadline = time.monotonic() + 5
    taken = []
    while not taken and time.monotonic() < deadline:
        a.renew({"i2": 1})
        taken = b.acquire(10)
    assert [(x.instance_id, x.epoch, x.previous_owner) for x in taken] == [("i1", 2, "a")]
    # The old owner's renew at epoch 1 renews nothing: it has lost i1.
    assert a.renew({"i1": 1, "i2": 1}) == {"i2"}
    row = b.owner_of("i1")
    assert row is not None and (row.owner, row.epoch) == ("b", 2)


def test_an_expired_lease_is_never_renewed(pg_url: str) -> None:
    a = _store(pg_url, "a", ttl=0.2)
    a.ensure(["i1"])
    (got,) = a.acquire(1)
    wait_until(lambda: (a.owner_of("i1").expires_in or 0) < 0, what="expiry")  # type: ignore[union-attr]
    assert a.renew({"i1": got.epoch}) == set()  # must acquire again, with a new epoch
    (again,) = a.acquire(1)
    assert again.epoch == got.epoch + 1 and again.previous_owner == "a"


def test_release_hands_over_at_once(pg_url: str) -> None:
    a = _store(pg_url, "a")
    b = _store(pg_url, "b")
    a.ensure(["i1"])
    (got,) = a.acquire(1)
    assert a.release({"i1": got.epoch + 5}) == set()  # a stale epoch releases nothing
    assert a.release({"i1": got.epoch}) == {"i1"}
    (taken,) = b.acquire(1)
    assert (taken.epoch, taken.previous_owner) == (2, None)  # released: no takeover wait


def test_concurrent_acquirers_take_different_rows(pg_url: str) -> None:
    nodes = [_store(pg_url, f"n{i}") for i in range(4)]
    nodes[0].ensure([f"i{i:03d}" for i in range(200)])
    results: dict[str, list[str]] = {}

    def take(s: LeaseStore) -> None:
        mine: list[str] = []
        while True:
            got = s.acquire(7)
            if not got:
                break
            mine += [g.instance_id for g in got]
        results[s.node_id] = mine

    threads = [threading.Thread(target=take, args=(s,)) for s in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    every = [i for ids in results.values() for i in ids]
    assert len(every) == 200 and len(set(every)) == 200  # each row taken exactly once


def _fenced_table(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(
            "CREATE TABLE outbox_probe (id serial PRIMARY KEY, instance_id text NOT NULL, "
            "lease_epoch bigint NOT NULL, body text NOT NULL)"
        )
        c.execute(
            "CREATE TRIGGER outbox_probe_fence BEFORE INSERT OR UPDATE ON outbox_probe "
            "FOR EACH ROW EXECUTE FUNCTION waz_fence_row()"
        )


def test_an_old_owners_write_after_takeover_is_refused(pg_url: str) -> None:
    a = _store(pg_url, "a", ttl=0.3)
    b = _store(pg_url, "b", ttl=30)
    _fenced_table(pg_url)
    a.ensure(["i1"])
    (mine,) = a.acquire(1)
    with psycopg.connect(pg_url, autocommit=True) as old:
        old.execute(
            "INSERT INTO outbox_probe (instance_id, lease_epoch, body) VALUES ('i1', %s, 'ok')",
            (mine.epoch,),
        )
        taken = wait_until(lambda: b.acquire(1), what="takeover after expiry")
        assert taken[0].epoch == mine.epoch + 1
        # The old owner (partitioned, unaware) writes with its old epoch: refused.
        with pytest.raises(psycopg.Error) as e:
            old.execute(
                "INSERT INTO outbox_probe (instance_id, lease_epoch, body) "
                "VALUES ('i1', %s, 'late')",
                (mine.epoch,),
            )
        assert is_stale_epoch(e.value)
        # And in a transaction through the check function.
        with pytest.raises(psycopg.Error) as e2, old.transaction():
            fence(old, "i1", mine.epoch)
        assert is_stale_epoch(e2.value)
        # The new owner's writes go through.
        old.execute(
            "INSERT INTO outbox_probe (instance_id, lease_epoch, body) VALUES ('i1', %s, 'new')",
            (taken[0].epoch,),
        )
        bodies = [r[0] for r in old.execute("SELECT body FROM outbox_probe ORDER BY id")]
    assert bodies == ["ok", "new"]


def test_a_takeover_waits_for_an_open_fenced_write(pg_url: str) -> None:
    """The check locks the lease row: a takeover cannot slip between the check and the
    commit of a write that passed it."""
    a = _store(pg_url, "a", ttl=30)
    a.ensure(["i1"])
    (mine,) = a.acquire(1)
    with psycopg.connect(pg_url) as writer:
        fence(writer, "i1", mine.epoch)  # transaction open, row locked FOR SHARE
        done = threading.Event()

        def force_takeover() -> None:
            with psycopg.connect(pg_url, autocommit=True) as c:
                c.execute("UPDATE leases SET owner = 'b', epoch = epoch + 1")
            done.set()

        t = threading.Thread(target=force_takeover)
        t.start()
        assert not done.wait(0.3)  # blocked by the open write
        writer.commit()
        assert done.wait(5)
        t.join()


def test_a_released_lease_refuses_writes(pg_url: str) -> None:
    a = _store(pg_url, "a")
    a.ensure(["i1"])
    (mine,) = a.acquire(1)
    a.release({"i1": mine.epoch})
    with psycopg.connect(pg_url) as c, pytest.raises(psycopg.Error) as e:
        fence(c, "i1", mine.epoch)
    assert is_stale_epoch(e.value)


def test_nodes_heartbeat_view_drain_and_status(pg_url: str) -> None:
    a = _store(pg_url, "a")
    b = _store(pg_url, "b")
    a.ensure(["i1", "i2", "i3"])
    assert a.heartbeat("tcp://10.0.0.1:7000") is False
    b.heartbeat("")
    assert a.view().live_nodes == 2 and a.view().instances == 3
    assert a.set_draining("b") is True
    assert a.set_draining("nobody") is False
    assert b.heartbeat("") is True
    v = b.view()
    assert (v.live_nodes, v.draining) == (1, True)
    a.acquire(2)
    rows = {n.node_id: n for n in a.nodes()}
    assert rows["a"].leases == 2 and rows["a"].endpoint == "tcp://10.0.0.1:7000"
    assert rows["b"].draining
    leases = a.leases()
    assert [(x.instance_id, x.owner) for x in leases] == [("i1", "a"), ("i2", "a"), ("i3", None)]
    b.leave()
    assert [n.node_id for n in a.nodes()] == ["a"]
    a.forget("i3")
    assert a.view().instances == 2
