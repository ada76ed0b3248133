"""Exclusive per-key claims: work that must run once in the cluster (`campaign:<id>` feeding,
`webhook:<id>` deliveries) is done only by the node holding its key.

A claim is a lease on a string key (docs/design.md, Cluster, "Claims"): a row of `claims`
(cluster/schema.py) with owner, epoch (grows on every take) and expiry on the database's clock.
The holder renews all its claims in one UPDATE every `renew_every`, and fences itself exactly
like a lease (lease_policy.LeaseKeeper): a claim whose last confirmed renew was sent more than
`ttl - margin` ago is dropped locally and its watchers are told, before the database lets
another node take it (`sent + ttl`). So a holder cut off from PostgreSQL stops the work first.

- `try_claim(key)`: take the key if nobody holds it (or its holder's claim expired).
- `take_back(prefix)`: a successor of a holder known dead on this node (a restarted delivery
  worker) holds that node's claims again at once, with new epochs, instead of after the ttl.
- `holds(key)`: asked before (and during) the work: False once the claim was lost, released, or
  its fence deadline passed, even if the watchdog has not run yet.
- `release(key)`, `release_all()`: give keys back; another node may take them at once.
- `watch(prefix, on_lost)`: `on_lost(key)` when a claim under that prefix is lost or fenced
  (from the claims threads: only tell).
- `unclaimed(keys)`: which of these keys nobody holds now (to look for orphaned work).
- `epoch(key)`: the fencing token for writes (`waz_claim_fence(key, epoch)` in the write's
  transaction refuses a stale holder, like `waz_fence` for leases).

`ClaimStore` is the SQL (one autocommit connection, used under a lock: the rounds and the
callers of `try_claim` share it); `Claims` is the logic, with an injected monotonic clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psycopg
from loguru import logger

from waz_actors.cluster import schema
from waz_actors.cluster.keys import campaign_key, webhook_key
from waz_actors.cluster.lease_policy import LeaseKeeper, LeaseTiming
from waz_actors.cluster.leases import connect, release_sql, renew_sql


class ClaimStore:
    """The claim SQL; each method one statement, expiry on the database's clock."""

    def __init__(self, url: str, node_id: str, ttl: float, *, timeout: float = 5.0) -> None:
        self.url = url
        self.node_id = node_id
        self.ttl = ttl
        self.timeout = timeout
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _all(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = connect(self.url, timeout=self.timeout)
                return self._conn.execute(sql, params).fetchall()
            except psycopg.Error:
                self._reset()
                raise

    def migrate(self) -> None:
        with self._lock:
            conn = connect(self.url, timeout=self.timeout)
            try:
                schema.apply(conn)
            finally:
                conn.close()

    def take(self, key: str) -> int | None:
        """The new epoch if this node got the key (free, released or expired), else None."""
        rows = self._all(
            "INSERT INTO claims AS c (key, owner, epoch, expires_at) "
            "VALUES (%s, %s, 1, now() + make_interval(secs => %s)) "
            "ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, epoch = c.epoch + 1, "
            "  expires_at = EXCLUDED.expires_at "
            "WHERE c.owner IS NULL OR c.expires_at <= now() "
            "RETURNING c.epoch",
            (key, self.node_id, self.ttl),
        )
        return int(rows[0][0]) if rows else None

    def take_back(self, prefix: str) -> dict[str, int]:
        """This node's unexpired claims under `prefix`, each with a new epoch (key -> epoch):
        for a successor of a holder known dead on this node (the delivery worker started
        again), which need not wait for them to expire. The old epoch is refused from now on
        (its renews, and `waz_claim_fence`)."""
        rows = self._all(
            "UPDATE claims SET epoch = epoch + 1, expires_at = now() + make_interval(secs => %s) "
            "WHERE owner = %s AND starts_with(key, %s) AND expires_at > now() "
            "RETURNING key, epoch",
            (self.ttl, self.node_id, prefix),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def renew(self, held: Mapping[str, int]) -> set[str]:
        """Those still ours at that epoch and unexpired get `now() + ttl`; the rest are lost."""
        if not held:
            return set()
        keys, epochs = zip(*held.items(), strict=True)
        rows = self._all(
            _RENEW,
            (list(keys), list(epochs), self.node_id, self.ttl),
        )
        return {r[0] for r in rows}

    def release(self, held: Mapping[str, int]) -> set[str]:
        if not held:
            return set()
        keys, epochs = zip(*held.items(), strict=True)
        rows = self._all(
            _RELEASE,
            (list(keys), list(epochs), self.node_id),
        )
        return {r[0] for r in rows}

    def unclaimed(self, keys: Iterable[str]) -> list[str]:
        """The keys nobody holds now (no row, released, or expired), in the order given."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        rows = self._all(
            "SELECT key FROM claims WHERE key = ANY(%s::text[]) "
            "AND owner IS NOT NULL AND expires_at > now()",
            (wanted,),
        )
        held = {r[0] for r in rows}
        return [k for k in wanted if k not in held]

    def rows(self, limit: int) -> list[dict[str, Any]]:
        """The claims held now (cluster.status), by key: owner, epoch, seconds left."""
        rows = self._all(
            "SELECT key, owner, epoch, extract(epoch FROM expires_at - now())::float8 "
            "FROM claims WHERE owner IS NOT NULL AND expires_at > now() ORDER BY key LIMIT %s",
            (limit,),
        )
        return [
            {"key": r[0], "owner": r[1], "epoch": int(r[2]), "expires_in": round(float(r[3]), 3)}
            for r in rows
        ]

    def forget(self, keys: Iterable[str]) -> None:
        """The work is gone for good (a deleted campaign): drop its rows, whoever holds them."""
        ks = list(keys)
        if ks:
            self._all("DELETE FROM claims WHERE key = ANY(%s::text[]) RETURNING key", (ks,))


# The claims held (at these epochs, by this node), locked in key order before they are
# changed: a group commit locks the claims its batch fences FOR SHARE in the same order
# (store/writer.py), so a renew or a release waits for it and never deadlocks with it (as
# cluster/leases.py does for leases).
_RENEW = renew_sql("claims", "key")
_RELEASE = release_sql("claims", "key")


class Claims:
    """This node's claims. `start()` runs two threads: the rounds (renew, one UPDATE) and a
    watchdog that never touches the database (fences on time even while a renew hangs)."""

    def __init__(
        self,
        store: ClaimStore,
        timing: LeaseTiming,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = store  # not `.store`: tests scan for store calls (StoreAPI contract)
        self.node_id = store.node_id
        self.timing = timing
        self.clock = clock
        self.keeper = LeaseKeeper(timing)
        self._lock = threading.Lock()  # keeper and watchers
        self._watchers: list[tuple[str, Callable[[str], None]]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.lost = 0  # claims lost or fenced since start (status, tests)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        for name, fn in (("claims-rounds", self._rounds), ("claims-fence", self._watchdog)):
            t = threading.Thread(target=fn, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop renewing (keeps the claims: `release_all` first to give them back)."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timing.renew_every + self.db.timeout + 1)
        self._threads.clear()

    def close(self) -> None:
        """Give every claim back and stop (a clean shutdown)."""
        try:
            self.release_all()
        except Exception as e:
            logger.warning("cluster: could not release claims: {}", e)
        self.stop()
        self.db.close()

    # -- the API ------------------------------------------------------------------------------

    def watch(self, prefix: str, on_lost: Callable[[str], None]) -> None:
        with self._lock:
            self._watchers.append((prefix, on_lost))

    def try_claim(self, key: str) -> bool:
        if not key:
            raise ValueError("a claim key must not be empty")
        if self.holds(key):
            return True
        sent_at = self.clock()
        try:
            epoch = self.db.take(key)
        except psycopg.Error as e:
            logger.warning("cluster: claim {} failed: {}", key, e)
            return False
        if epoch is None:
            return False
        if self.clock() >= sent_at + self.timing.ttl - self.timing.margin:
            # The answer came too late to be safe (a partition held it): the claim may be
            # expiring already. Leave it; it expires and someone takes it with a new epoch.
            logger.warning("cluster: claim {} answered too late; not used", key)
            return False
        with self._lock:
            self.keeper.acquired(key, epoch, sent_at)
        return True

    def take_back(self, prefix: str) -> list[str]:
        """Hold again, at once and with new epochs, the claims under `prefix` that this node
        still holds in the database: only for a successor of a holder KNOWN dead (its process
        waited for), or both would work on them until the old one's renew failed."""
        sent_at = self.clock()
        try:
            got = self.db.take_back(prefix)
        except psycopg.Error as e:  # they expire instead, and are taken then
            logger.warning("cluster: could not take back the {} claims: {}", prefix, e)
            return []
        if self.clock() >= sent_at + self.timing.ttl - self.timing.margin:
            logger.warning("cluster: taking back the {} claims answered too late", prefix)
            return []
        with self._lock:
            for key, epoch in got.items():
                self.keeper.acquired(key, epoch, sent_at)
        return sorted(got)

    def holds(self, key: str) -> bool:
        with self._lock:
            deadline = self.keeper.deadline(key)
        return deadline is not None and self.clock() < deadline

    def epoch(self, key: str) -> int | None:
        with self._lock:
            return self.keeper.epoch(key) if self._alive(key) else None

    def held(self) -> dict[str, int]:
        with self._lock:
            return {k: e for k, e in self.keeper.held().items() if self._alive(k)}

    def release(self, key: str) -> None:
        self._release([key])

    def release_all(self) -> int:
        with self._lock:
            keys = list(self.keeper.held())
        return self._release(keys)

    def unclaimed(self, keys: Iterable[str]) -> list[str]:
        return self.db.unclaimed(keys)

    def forget(self, keys: Iterable[str]) -> None:
        ks = list(keys)
        with self._lock:
            for k in ks:
                self.keeper.drop(k)
        self.db.forget(ks)

    # -- inside -------------------------------------------------------------------------------

    def _alive(self, key: str) -> bool:
        deadline = self.keeper.deadline(key)
        return deadline is not None and self.clock() < deadline

    def _release(self, keys: list[str]) -> int:
        with self._lock:
            held = {k: e for k in keys if (e := self.keeper.epoch(k)) is not None}
            for k in held:  # dropped first: no work starts on a key being given back
                self.keeper.drop(k)
        if not held:
            return 0
        try:
            return len(self.db.release(held))
        except psycopg.Error as e:  # not given back: they expire after the ttl instead
            logger.warning("cluster: could not release {} claim(s): {}", len(held), e)
            return 0

    def renew(self) -> None:
        """One round: renew every claim held; tell the watchers of those lost."""
        with self._lock:
            held = self.keeper.held()
        if not held:
            return
        sent_at = self.clock()
        renewed = self.db.renew(held)
        lost = []
        with self._lock:
            self.keeper.renewed(renewed, sent_at)
            for key, epoch in held.items():
                if key not in renewed and self.keeper.epoch(key) == epoch:
                    self.keeper.drop(key)
                    lost.append(key)
        self._lost(lost, "claim lost")

    def check(self, now: float) -> list[str]:
        """Drop the claims whose fence deadline passed; tell their watchers."""
        with self._lock:
            fenced = self.keeper.to_fence(now)
            for key in fenced:
                self.keeper.drop(key)
        self._lost(fenced, "claim renewals failed; work stopped before the claim runs out")
        return fenced

    def _lost(self, keys: list[str], why: str) -> None:
        if not keys:
            return
        with self._lock:
            watchers = list(self._watchers)
        for key in keys:
            self.lost += 1
            logger.warning("cluster: {}: {}", key, why)
            for prefix, fn in watchers:
                if key.startswith(prefix):
                    try:
                        fn(key)
                    except Exception:
                        logger.exception("cluster: claim watcher failed for {}", key)

    def _rounds(self) -> None:
        while not self._stop.is_set():
            t0 = self.clock()
            try:
                self.renew()
            except Exception as e:
                logger.warning("cluster: claim round failed: {}", e)
            self._stop.wait(max(0.0, self.timing.renew_every - (self.clock() - t0)))

    def _watchdog(self) -> None:
        tick = min(self.timing.margin / 4, self.timing.renew_every / 2)
        while not self._stop.is_set():
            self.check(self.clock())
            self._stop.wait(tick)


__all__ = ["ClaimStore", "Claims", "campaign_key", "webhook_key"]
