"""Claim rows are locked in key order by everyone (review finding 4): the claims round's renew
and release (cluster/claims.py) and a group commit's claim fences (the writer locks the claims
its batch names, sorted, right after BEGIN). Otherwise a batch fencing `k2` then `k1` while the
round renews `k1` then `k2` deadlocks: PostgreSQL kills one after deadlock_timeout and the
node's writes or its claims suffer. Real PostgreSQL, a real writer and a real ClaimStore."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.waiting import wait_until
from waz_actors.store import Store
from waz_actors.store.writer import Tx


def lock_waiters(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("action", ["renew", "release"])
def test_a_batch_fencing_claims_out_of_order_never_deadlocks_with_the_round(
    make_store: Callable[..., Store], target: str, action: str
) -> None:
    from waz_actors.cluster.claims import ClaimStore

    s = make_store()
    claims = ClaimStore(target, "node-a", 30)
    # k1's row comes first in the table, where the round's UPDATE starts; the batch fences
    # k2 first, then k1.
    held = {"campaign:k1": claims.take("campaign:k1"), "campaign:k2": claims.take("campaign:k2")}
    assert None not in held.values()
    waiting = lock_waiters(target)
    round_done: list[Any] = []

    def round_() -> None:
        try:
            fn = claims.renew if action == "renew" else claims.release
            round_done.append(fn(held))  # type: ignore[arg-type]
        except Exception as e:
            round_done.append(e)

    def fence(key: str, first: bool) -> Callable[[Tx], str]:
        def op(tx: Tx) -> str:
            tx.conn.execute("SELECT waz_claim_fence(?, ?)", (key, held[key])).fetchall()
            if first:  # the round starts between this batch's two fences
                threading.Thread(target=round_, daemon=True).start()
                wait_until(
                    lambda: round_done or lock_waiters(target) > waiting,
                    what="the round waits for this batch",
                )
            return key

        return op

    try:
        writer = s._db.writer
        gate = threading.Event()
        writer.post(lambda tx: gate.wait(10))  # the two fences go in one batch behind it
        futs = [
            writer.submit(fence("campaign:k2", True), claim="campaign:k2"),
            writer.submit(fence("campaign:k1", False), claim="campaign:k1"),
        ]
        gate.set()
        assert [f.result(15) for f in futs] == ["campaign:k2", "campaign:k1"]
        wait_until(lambda: bool(round_done), timeout=15, what="the round finished")
        assert round_done == [set(held)], round_done  # both renewed (released), no deadlock
    finally:
        claims.close()
