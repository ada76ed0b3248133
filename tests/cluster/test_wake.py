"""The outbox across nodes on the real PostgreSQL: a send on any node wakes the owner only
after its commit, and claims with SKIP LOCKED never read a row twice."""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.waiting import wait_until
from waz_actors.cluster.leases import LeaseStore, is_stale_epoch
from waz_actors.cluster.wake import WakeListener, claim, wake_owner


def _outbox(url: str, rows: int, instance_id: str = "i1") -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(
            "CREATE TABLE outbox (id bigserial PRIMARY KEY, instance_id text NOT NULL, "
            "status text NOT NULL DEFAULT 'queued', lease_epoch bigint NOT NULL DEFAULT 0)"
        )
        c.execute(
            "INSERT INTO outbox (instance_id) SELECT %s FROM generate_series(1, %s)",
            (instance_id, rows),
        )


def test_the_owner_is_woken_after_the_commit_and_only_then(pg_url: str) -> None:
    owner = LeaseStore(pg_url, "node-b", 30)
    owner.migrate()
    owner.ensure(["i1", "i2"])
    owner.acquire(1)  # i1 is node-b's; i2 stays unowned
    woken: list[str] = []
    resyncs: list[int] = []
    listener = WakeListener(pg_url, "node-b", woken.append, lambda: resyncs.append(1))
    listener.start()
    try:
        wait_until(listener.listening.is_set, what="listening")
        with psycopg.connect(pg_url) as sender:  # node a accepts a message for i1
            wake_owner(sender, "i1")
            wake_owner(sender, "i2")  # no owner: nobody to wake
            # Not committed yet: nothing delivered.
            with pytest.raises(AssertionError):
                wait_until(lambda: woken, timeout=0.3, what="no wake before commit")
            sender.commit()
        wait_until(lambda: woken == ["i1"], what="woken after commit")
        with psycopg.connect(pg_url) as sender:
            wake_owner(sender, "i1")
            sender.rollback()  # a refused send wakes nobody
        with pytest.raises(AssertionError):
            wait_until(lambda: len(woken) > 1, timeout=0.3, what="no wake after rollback")
        assert resyncs == [1]
    finally:
        listener.stop()
        owner.close()


def test_claims_never_read_a_row_twice_and_need_the_current_epoch(pg_url: str) -> None:
    a = LeaseStore(pg_url, "a", 30)
    a.migrate()
    a.ensure(["i1"])
    (lease,) = a.acquire(1)
    _outbox(pg_url, 300)
    got: list[list[int]] = [[], [], []]

    def claimer(k: int) -> None:
        with psycopg.connect(pg_url, autocommit=True) as c:
            while True:
                rows = claim(c, "outbox", "i1", lease.epoch, 7)
                if not rows:
                    return
                got[k] += rows

    threads = [threading.Thread(target=claimer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    every = [r for g in got for r in g]
    assert len(every) == 300 and len(set(every)) == 300
    # After a takeover the old epoch claims nothing: refused by the database.
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("INSERT INTO outbox (instance_id) VALUES ('i1')")
        c.execute("UPDATE leases SET epoch = epoch + 1, owner = 'b'")
        with pytest.raises(psycopg.Error) as e:
            claim(c, "outbox", "i1", lease.epoch, 10)
        assert is_stale_epoch(e.value)
        assert claim(c, "outbox", "i1", lease.epoch + 1, 10) == [301]
    a.close()
