"""The lease SQL: every statement one node needs, each one round trip, expiry on the database's
clock (`now()`), so the nodes' own clocks never have to agree.

`LeaseStore` owns one psycopg connection (autocommit: each statement is its own transaction)
and reopens it after a failure. It is not thread-safe: the cluster node's round thread uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from waz_actors.cluster import schema


@dataclass(frozen=True, slots=True)
class Acquired:
    instance_id: str
    epoch: int
    previous_owner: str | None  # None: it was released (or new); a name: it expired there


@dataclass(frozen=True, slots=True)
class View:
    instances: int
    live_nodes: int  # fresh heartbeat, not draining
    draining: bool  # this node
    # Seconds until the first lease another node holds runs out (None: none held). A node that
    # stopped renewing shows here ttl - renew_every early, so the round after it is timed to
    # the expiry instead of to this node's own renew schedule.
    next_expiry: float | None = None


@dataclass(frozen=True, slots=True)
class LeaseRow:
    instance_id: str
    owner: str | None
    epoch: int
    expires_in: float | None  # seconds left by the database clock; None: released


@dataclass(frozen=True, slots=True)
class NodeRow:
    node_id: str
    heartbeat_age: float
    draining: bool
    endpoint: str
    leases: int


def connect(url: str, *, timeout: float = 5.0) -> psycopg.Connection[Any]:
    """An autocommit connection. TCP keepalives and tcp_user_timeout make a dead peer an error
    instead of a hang (the node's fencing does not depend on it: it runs on its own thread)."""
    ms = max(1000, int(timeout * 1000))
    return psycopg.connect(
        url,
        autocommit=True,
        connect_timeout=max(1, int(timeout)),
        keepalives=1,
        keepalives_idle=max(1, int(timeout)),
        keepalives_interval=1,
        keepalives_count=3,
        tcp_user_timeout=ms,
        row_factory=tuple_row,
    )


class LeaseStore:
    def __init__(self, url: str, node_id: str, ttl: float, *, timeout: float = 5.0) -> None:
        self.url = url
        self.node_id = node_id
        self.ttl = ttl  # real seconds
        self.timeout = timeout
        self._conn: psycopg.Connection[Any] | None = None

    # -- connection ---------------------------------------------------------------------------

    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.url, timeout=self.timeout)
        return self._conn

    def reset(self) -> None:
        """After an error: drop the connection; the next call opens a fresh one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    close = reset

    def migrate(self) -> None:
        schema.apply(self.conn())

    def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        try:
            return self.conn().execute(sql, params).fetchall()
        except psycopg.Error:
            self.reset()
            raise

    # -- nodes --------------------------------------------------------------------------------

    def heartbeat(self, endpoint: str = "") -> bool:
        """Say this node is alive; answer whether it was asked to drain."""
        rows = self._all(
            "INSERT INTO nodes (node_id, heartbeat_at, endpoint) VALUES (%s, now(), %s) "
            "ON CONFLICT (node_id) DO UPDATE SET heartbeat_at = now(), "
            "endpoint = EXCLUDED.endpoint RETURNING draining",
            (self.node_id, endpoint),
        )
        return bool(rows[0][0])

    def view(self) -> View:
        """The figures of one placement round, in one statement."""
        rows = self._all(
            "SELECT (SELECT count(*) FROM leases), "
            "(SELECT count(*) FROM nodes WHERE NOT draining "
            "   AND heartbeat_at > now() - make_interval(secs => %s)), "
            "(SELECT coalesce(bool_or(draining), false) FROM nodes WHERE node_id = %s), "
            "(SELECT extract(epoch FROM min(expires_at) - now())::float8 FROM leases "
            "   WHERE owner IS NOT NULL AND owner <> %s AND expires_at > now())",
            (self.ttl, self.node_id, self.node_id),
        )
        n, live, draining, nxt = rows[0]
        return View(int(n), int(live), bool(draining), None if nxt is None else float(nxt))

    def set_draining(self, node_id: str, draining: bool = True) -> bool:
        """Ask a node to hand its leases over (or to take its share again). False: unknown."""
        rows = self._all(
            "UPDATE nodes SET draining = %s WHERE node_id = %s RETURNING node_id",
            (draining, node_id),
        )
        return bool(rows)

    def leave(self) -> None:
        """This node is gone (after it released its leases): others stop counting it."""
        self._all("DELETE FROM nodes WHERE node_id = %s RETURNING node_id", (self.node_id,))

    # -- leases -------------------------------------------------------------------------------

    def ensure(self, instance_ids: list[str]) -> None:
        """Every instance has a lease row (unowned until a node acquires it)."""
        if instance_ids:
            self._all(
                "INSERT INTO leases (instance_id) SELECT unnest(%s::text[]) "
                "ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id",
                (list(instance_ids),),
            )

    def forget(self, instance_id: str) -> None:
        """The instance was deleted."""
        self._all("DELETE FROM leases WHERE instance_id = %s RETURNING instance_id", (instance_id,))

    def acquire(self, limit: int) -> list[Acquired]:
        """Take up to `limit` unowned or expired leases, each with a new epoch. SKIP LOCKED:
        nodes acquiring at the same moment take different rows and never wait on each other."""
        if limit <= 0:
            return []
        rows = self._all(
            "WITH free AS ("
            "  SELECT instance_id, owner AS previous FROM leases"
            "  WHERE owner IS NULL OR expires_at <= now()"
            "  ORDER BY expires_at, instance_id LIMIT %s FOR UPDATE SKIP LOCKED) "
            "UPDATE leases l SET owner = %s, epoch = l.epoch + 1, "
            "  expires_at = now() + make_interval(secs => %s) "
            "FROM free WHERE l.instance_id = free.instance_id "
            "RETURNING l.instance_id, l.epoch, free.previous",
            (limit, self.node_id, self.ttl),
        )
        return [Acquired(r[0], int(r[1]), r[2]) for r in sorted(rows)]

    def renew(self, held: Mapping[str, int]) -> set[str]:
        """One UPDATE for every lease held: those still ours at that epoch and not expired get
        `now() + ttl`; the answer is the set renewed (the rest are lost)."""
        if not held:
            return set()
        ids, epochs = zip(*held.items(), strict=True)
        rows = self._all(
            _RENEW,
            (list(ids), list(epochs), self.node_id, self.ttl),
        )
        return {r[0] for r in rows}

    def release(self, held: Mapping[str, int]) -> set[str]:
        """Give leases back (their sessions are closed): another node may take them at once."""
        if not held:
            return set()
        ids, epochs = zip(*held.items(), strict=True)
        rows = self._all(
            _RELEASE,
            (list(ids), list(epochs), self.node_id),
        )
        return {r[0] for r in rows}

    def owner_of(self, instance_id: str) -> LeaseRow | None:
        rows = self._all(_LEASE_SELECT + " WHERE instance_id = %s", (instance_id,))
        return _lease(rows[0]) if rows else None

    # -- status -------------------------------------------------------------------------------

    def nodes(self) -> list[NodeRow]:
        rows = self._all(
            "SELECT n.node_id, extract(epoch FROM now() - n.heartbeat_at)::float8, n.draining, "
            "  n.endpoint, (SELECT count(*) FROM leases l "
            "    WHERE l.owner = n.node_id AND l.expires_at > now()) "
            "FROM nodes n ORDER BY n.node_id"
        )
        return [NodeRow(r[0], float(r[1]), bool(r[2]), r[3], int(r[4])) for r in rows]

    def leases(self, limit: int = 1000, after: str = "") -> list[LeaseRow]:
        rows = self._all(
            _LEASE_SELECT + " WHERE instance_id > %s ORDER BY instance_id LIMIT %s",
            (after, limit),
        )
        return [_lease(r) for r in rows]


# The leases held (at these epochs, by this node), locked in instance order before they are
# changed: the store's fence (waz_fence_all) locks them FOR SHARE in the same order, so a renew
# or a release waits for a group commit and never deadlocks with one.
def _mine(table: str, key: str, extra: str) -> str:
    """The rows of `table` this node holds at the given epochs, locked in key order: a renew or
    release and a batch's fence (store/fencing.py) never lock the same rows in opposite orders."""
    return (
        "WITH mine AS ("
        f"  SELECT t.{key} FROM {table} t"
        f"  JOIN unnest(%s::text[], %s::bigint[]) AS h({key}, epoch)"
        f"    ON t.{key} = h.{key} AND t.epoch = h.epoch"
        f"  WHERE t.owner = %s {extra}"
        f"  ORDER BY t.{key} FOR NO KEY UPDATE OF t) "
    )


def renew_sql(table: str, key: str) -> str:
    """Params: keys, epochs, owner, ttl. Those still ours at that epoch and unexpired get
    `now() + ttl`; the rows returned are the ones renewed."""
    return _mine(table, key, "AND t.expires_at > now()") + (
        f"UPDATE {table} t SET expires_at = now() + make_interval(secs => %s) "
        f"FROM mine WHERE t.{key} = mine.{key} RETURNING t.{key}"
    )


def release_sql(table: str, key: str) -> str:
    """Params: keys, epochs, owner. Ours at that epoch -> unowned, free at once."""
    return _mine(table, key, "") + (
        f"UPDATE {table} t SET owner = NULL, expires_at = '-infinity' "
        f"FROM mine WHERE t.{key} = mine.{key} RETURNING t.{key}"
    )


_RENEW = renew_sql("leases", "instance_id")
_RELEASE = release_sql("leases", "instance_id")

_LEASE_SELECT = (
    "SELECT instance_id, owner, epoch, "
    "  CASE WHEN expires_at = '-infinity' THEN NULL "
    "  ELSE extract(epoch FROM expires_at - now())::float8 END FROM leases"
)


def _lease(r: tuple[Any, ...]) -> LeaseRow:
    return LeaseRow(r[0], r[1], int(r[2]), None if r[3] is None else float(r[3]))


def fence(conn: psycopg.Connection[Any], instance_id: str, epoch: int) -> None:
    """In a write transaction: raise psycopg.errors (SQLSTATE WZ409) unless `epoch` is the
    current one of a held, unexpired lease; holds the lease row until the transaction ends."""
    conn.execute("SELECT waz_fence(%s, %s)", (instance_id, epoch))


def is_stale_epoch(error: BaseException) -> bool:
    return isinstance(error, psycopg.Error) and error.sqlstate == schema.STALE_EPOCH


__all__ = ["Acquired", "LeaseRow", "LeaseStore", "NodeRow", "View", "fence", "is_stale_epoch"]
