"""The outbox across nodes: `message.send` on any node commits to PostgreSQL and wakes the
instance's owner, which claims and sends.

- `wake_owner(conn, instance_id)`: in the accepting transaction, `pg_notify` on the owner's
  channel (`waz_node_<node_id>`). PostgreSQL delivers a notification only when (and if) that
  transaction commits: the owner is never woken for a row it cannot read yet.
- `WakeListener`: the owner's thread LISTENing on its channel; each payload is an instance id.
  A notification can be missed (the listener was reconnecting): after every (re)connect it
  calls `on_resync`, so the owner scans its queues once; rows are durable, a wake-up is only
  a hint.
- `CLAIM_SQL`: how the owner takes queued rows: `FOR UPDATE SKIP LOCKED` so two claimers (an
  old and a new owner during a hand-over, or two threads) never read the same row, and
  `waz_fence` in the same transaction so a claim with a stale epoch is refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from loguru import logger
from psycopg import sql

from waz_actors.cluster.leases import connect

CHANNEL_PREFIX = "waz_node_"


def channel(node_id: str) -> str:
    return CHANNEL_PREFIX + node_id


def wake_owner(conn: psycopg.Connection[Any], instance_id: str) -> None:
    """Wake the instance's owner when the current transaction commits (no owner: nobody)."""
    conn.execute(
        "SELECT pg_notify(%s || owner, instance_id) FROM leases "
        "WHERE instance_id = %s AND owner IS NOT NULL",
        (CHANNEL_PREFIX, instance_id),
    )


# For the PostgreSQL store's outbox (branch w3-pg): %(table)s is its messages table. Claims up
# to `limit` queued rows of one instance, oldest first, for the owner at `epoch`.
CLAIM_SQL = """
WITH fence AS (SELECT waz_fence(%(instance_id)s, %(epoch)s)),
due AS (
    SELECT id FROM {table}, fence
    WHERE instance_id = %(instance_id)s AND status = 'queued'
    ORDER BY id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {table} m SET status = 'sending', lease_epoch = %(epoch)s
FROM due WHERE m.id = due.id
RETURNING m.id
"""


def claim(
    conn: psycopg.Connection[Any], table: str, instance_id: str, epoch: int, limit: int
) -> list[Any]:
    """Claim queued rows (one statement, its own transaction under autocommit)."""
    query = sql.SQL(CLAIM_SQL).format(table=sql.Identifier(table))
    rows = conn.execute(
        query, {"instance_id": instance_id, "epoch": epoch, "limit": limit}
    ).fetchall()
    return sorted(r[0] for r in rows)


class WakeListener:
    """LISTEN on this node's channel; `on_wake(instance_id)` per notification, `on_resync()`
    after every (re)connect. Runs on its own thread; callbacks must only tell (quick)."""

    def __init__(
        self,
        url: str,
        node_id: str,
        on_wake: Callable[[str], None],
        on_resync: Callable[[], None] = lambda: None,
        *,
        retry: float = 1.0,
    ) -> None:
        self.url = url
        self.channel = channel(node_id)
        self.on_wake = on_wake
        self.on_resync = on_resync
        self.retry = retry
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-wake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.retry + 2)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect(self.url) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self.listening.set()
                    self.on_resync()
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            self.on_wake(n.payload)
            except Exception as e:
                self.listening.clear()
                logger.warning("cluster: wake listener reconnecting: {}", e)
                self._stop.wait(self.retry)
