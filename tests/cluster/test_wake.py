"""The outbox across nodes on the real PostgreSQL: the store's wake-up (store/messages.py
`wake_owner`, the statement every accepting transaction runs) reaches the owner's listener only
after its commit, never after a rollback, and never a node that owns nothing."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.waiting import wait_until
from waz_actors.cluster.leases import LeaseStore
from waz_actors.cluster.wake import WakeListener
from waz_actors.store import messages
from waz_actors.store.pg import translate


class Seam:
    """A bare psycopg connection behind the store's `?` paramstyle (store/sql.py Conn)."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, query: str, params: Any = ()) -> Any:
        return self.raw.execute(translate(query), params)


def wake_owner(conn: psycopg.Connection[Any], instance_id: str) -> None:
    messages.wake_owner(Seam(conn), instance_id)  # type: ignore[arg-type]


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
