"""The cluster node: the thread that renews, acquires and releases this daemon's leases, and a
watchdog that fences (closes sessions locally) when renewals stop coming back in time.

It tells the daemon what to do through `Hooks` (the runtime turns them into supervisor
messages: tell, never ask), and hears back through `stopped` when a session it asked to hand
over is closed. All lease decisions are the pure classes of lease_policy.py; all SQL is
leases.py. Database calls run on the round thread only; the watchdog never touches the
database, so a hung connection (a partition) cannot delay a fence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger

from waz_actors.cluster.lease_policy import LeaseKeeper, LeaseTiming, Placement, PlacementView
from waz_actors.cluster.leases import LeaseStore


class Hooks(Protocol):
    def start(self, instance_id: str, epoch: int) -> None:
        """This node holds the lease now: run the instance."""

    def stop(self, instance_id: str, reason: str, release: bool) -> None:
        """Hand the instance over: close its session (in-flight send settled), then call
        `ClusterNode.stopped` when it is closed, so the lease is given back (`release`)."""

    def fence(self, instance_ids: list[str], reason: str) -> None:
        """These leases are lost or fenced (dropped already): close every one of their
        sessions now, all at once, from the calling thread and without the database."""


@dataclass
class NodeStats:
    rounds: int = 0
    failed_rounds: int = 0
    acquired: int = 0
    released: int = 0
    lost: int = 0
    fenced: int = 0
    refused: int = 0  # leases dropped because the database refused a write under them
    last_round_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


# How long after another node's lease expiry the round that takes it runs (database and node
# clocks agree on durations, not on instants: a round a little late finds the lease expired).
EXPIRY_SLACK = 0.05


class ClusterNode:
    def __init__(
        self,
        leases: LeaseStore,
        timing: LeaseTiming,
        placement: Placement,
        hooks: Hooks,
        *,
        endpoint: str = "",
        instances: Callable[[], list[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.node_id = leases.node_id
        self.timing = timing
        self.placement = placement
        self.hooks = hooks
        self.endpoint = endpoint
        self._instances = instances  # the ids to register lease rows for at start
        self.clock = clock
        self.keeper = LeaseKeeper(timing)
        self.stats = NodeStats()
        self._lock = threading.Lock()  # keeper, the sets below
        self._releasing: set[str] = set()  # asked to stop, lease still held and renewed
        self._to_release: set[str] = set()  # stopped: give the lease back next round
        self._pending: dict[str, tuple[float, int]] = {}  # takeover delay: id -> (due, epoch)
        self._new_ids: list[str] = []
        self._forget: list[str] = []
        self._wake = threading.Event()
        self._due = threading.Event()  # a takeover waits out its delay: the watchdog's tick
        self._stop = threading.Event()
        self._halted = False  # no more acquiring (hand-over under way)
        self.draining = False
        self._threads: list[threading.Thread] = []
        # Called (round thread) before leases are released: the store commits every write the
        # closed sessions made, under the lease, first (a write after the release is refused).
        self.before_release: Callable[[], None] = lambda: None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.leases.migrate()
        if self._instances is not None:
            self.leases.ensure(self._instances())
        for name, fn in (("cluster-rounds", self._rounds), ("cluster-fence", self._watchdog)):
            t = threading.Thread(target=fn, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def halt(self) -> None:
        """Stop taking leases (SIGTERM): the daemon is about to close every session."""
        self._halted = True

    def hand_over(self) -> int:
        """After the daemon closed every session: give every lease back at once, leave the
        node table, stop the threads. Answers how many leases were released."""
        self._halted = True
        self._stop.set()
        self._wake.set()
        self._due.set()
        for t in self._threads:
            t.join(self.timing.renew_every + self.leases.timeout + 1)
        with self._lock:
            held = self.keeper.held()
        released: set[str] = set()
        try:
            self._flush()
            released = self.leases.release(held)
            self.leases.leave()
        except Exception as e:
            logger.warning("cluster: could not release {} lease(s): {}", len(held), e)
        finally:
            self.leases.close()
        with self._lock:
            for iid in held:
                self.keeper.drop(iid)
        self.stats.released += len(released)
        logger.info("cluster: {} lease(s) handed over", len(released))
        return len(released)

    def kill(self) -> None:
        """Tests: stop as a crash would, releasing nothing (a round stuck behind a partition
        is abandoned: it ends when its connection fails, and starts nothing after this)."""
        self._stop.set()
        self._wake.set()
        self._due.set()
        for t in self._threads:
            t.join(0.5)

    # -- told by the daemon (any thread) ------------------------------------------------------

    def stopped(self, instance_id: str) -> None:
        """A session this node asked to hand over is closed: release its lease."""
        with self._lock:
            if instance_id in self._releasing:
                self._to_release.add(instance_id)
        self._wake.set()

    def created(self, instance_id: str) -> None:
        with self._lock:
            self._new_ids.append(instance_id)
        self._wake.set()

    def deleted(self, instance_id: str) -> None:
        with self._lock:
            self.keeper.drop(instance_id)
            self._releasing.discard(instance_id)
            self._pending.pop(instance_id, None)
            self._forget.append(instance_id)
        self._wake.set()

    def held(self) -> dict[str, int]:
        with self._lock:
            return self.keeper.held()

    def epoch(self, instance_id: str) -> int | None:
        """The fencing token to put on this instance's writes (None: not ours)."""
        with self._lock:
            return self.keeper.epoch(instance_id)

    def refused(self, instance_id: str, epoch: int | None) -> None:
        """The database refused a write made under this epoch (the store's writer thread):
        the lease is not ours any more (taken, or expired unseen: a pause). If it is still the
        one held, drop it and close the session now, as for a lost renew; an older epoch (a
        late write of a session already replaced here) changes nothing."""
        with self._lock:
            if epoch is None or self.keeper.epoch(instance_id) != epoch:
                return
            self._drop(instance_id)
        self.stats.refused += 1
        logger.bind(instance=instance_id).warning(
            "cluster: a write was refused for a stale lease epoch; closing the session"
        )
        self.hooks.fence([instance_id], "fenced out: the database refused a write")

    def _flush(self) -> None:
        try:
            self.before_release()
        except Exception as e:  # released all the same: late writes are refused, not lost
            logger.warning("cluster: store not flushed before releasing leases: {}", e)

    def _drop(self, instance_id: str) -> None:
        """Under the lock: the lease is not held any more (fenced, lost, refused)."""
        self.keeper.drop(instance_id)
        self._releasing.discard(instance_id)
        self._to_release.discard(instance_id)
        self._pending.pop(instance_id, None)

    # -- the watchdog: fences and due starts, never the database ------------------------------

    def _watchdog(self) -> None:
        tick = min(self.timing.margin / 4, self.timing.renew_every / 2)
        while not self._stop.is_set():
            now = self.clock()
            self.check(now)
            with self._lock:
                due = min((d for d, _ in self._pending.values()), default=None)
            # A takeover starts when its delay is over, not at the next tick.
            self._due.wait(tick if due is None else max(0.0, min(tick, due - now)))
            self._due.clear()

    def check(self, now: float) -> None:
        """Fence what must be fenced, start what waited out its takeover delay."""
        starts: list[tuple[str, int]] = []
        with self._lock:
            deadline = self.keeper.next_deadline()
            fenced = self.keeper.to_fence(now)
            for iid in fenced:
                self._drop(iid)
            for iid, (due, epoch) in list(self._pending.items()):
                if now >= due:
                    del self._pending[iid]
                    starts.append((iid, epoch))
        if fenced:
            # All at once, from this thread: the round thread may be stuck on the database.
            self.stats.fenced += len(fenced)
            self.hooks.fence(fenced, "fenced: lease renewals failed")
            logger.warning(
                "cluster: lease renewals failed; {} session(s) closed before the leases run "
                "out ({:.0f} ms after the fence deadline): {}",
                len(fenced),
                max(0.0, self.clock() - deadline) * 1000 if deadline is not None else 0.0,
                ", ".join(fenced[:10]) + (" ..." if len(fenced) > 10 else ""),
            )
        for iid, epoch in starts:
            self.hooks.start(iid, epoch)

    # -- the rounds ---------------------------------------------------------------------------

    def _rounds(self) -> None:
        while not self._stop.is_set():
            t0 = self.clock()
            soon: float | None = None
            try:
                soon = self.round(t0)
                self.stats.rounds += 1
            except Exception as e:
                self.stats.failed_rounds += 1
                self.stats.errors = [*self.stats.errors[-9:], str(e).splitlines()[0][:200]]
                logger.warning("cluster: lease round failed: {}", e)
            self.stats.last_round_seconds = self.clock() - t0
            wait = self.keeper.next_renew(t0) - self.clock()
            if soon is not None:
                wait = min(wait, soon)
            self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def round(self, now: float) -> float | None:
        """One round: heartbeat, renew everything held (one UPDATE) when a renew is due,
        release what was handed over, then acquire or give back toward the fair share.

        Answers how soon the next round should come when that is before the next renew: the
        placement budget ran out with work left (so a node catches up at `acquire_rate`, not
        at one budget per renew round), or another node's lease runs out first (a node that
        stopped renewing: its instances are taken at the expiry)."""
        with self._lock:
            new_ids, self._new_ids = self._new_ids, []
            forget, self._forget = self._forget, []
        if new_ids:
            self.leases.ensure(new_ids)
        for iid in forget:
            self.leases.forget(iid)
        self.draining = self.leases.heartbeat(self.endpoint)
        if self.keeper.renew_due(now):
            self._renew(now)
        self._release_stopped()
        if self._halted or self._stop.is_set():
            return None
        view = self.leases.view()
        with self._lock:
            mine = len(self.keeper) - len(self._releasing)
        pv = PlacementView(view.instances, view.live_nodes, mine, view.draining)
        plan = self.placement.plan(pv, self.clock())
        got = self._acquire(plan.acquire) if plan.acquire else 0
        if plan.release:
            self._give_back(plan.release, "draining" if view.draining else "rebalancing")
        # Work left past the budget, and the budget (not the free leases) was what limited
        # this round: come back when it refilled. A node one short of a share no lease is
        # free for (5,000 over 3 nodes) does not spin.
        soon = self.placement.gap if plan.more and got == plan.acquire else None
        if view.next_expiry is not None:
            # Just after it: the database must see the lease expired when the round asks.
            after = view.next_expiry + EXPIRY_SLACK
            soon = after if soon is None else min(soon, after)
        return soon

    def _renew(self, now: float) -> None:
        with self._lock:
            held = self.keeper.held()
            self.keeper.round_started(now)
        if not held:
            return
        sent_at = self.clock()  # before the statement leaves: the database's now() is later
        renewed = self.leases.renew(held)
        lost = [i for i in held if i not in renewed]
        with self._lock:
            self.keeper.renewed(renewed, sent_at)
            really_lost = []
            for iid in lost:
                if self.keeper.epoch(iid) == held[iid]:  # not fenced or re-acquired meanwhile
                    self._drop(iid)
                    really_lost.append(iid)
        if really_lost:
            self.stats.lost += len(really_lost)
            logger.warning("cluster: {} lease(s) lost; closing their sessions", len(really_lost))
            self.hooks.fence(really_lost, "lease lost")

    def _release_stopped(self) -> None:
        with self._lock:
            ids = list(self._to_release)
            held = {i: e for i in ids if (e := self.keeper.epoch(i)) is not None}
        if not ids:
            return
        self._flush()
        released = self.leases.release(held)
        with self._lock:
            for iid in ids:
                self._to_release.discard(iid)
                self._releasing.discard(iid)
                self.keeper.drop(iid)
        self.stats.released += len(released)

    def _acquire(self, n: int) -> int:
        """Take up to `n` leases; answers how many the database gave."""
        sent_at = self.clock()
        got = self.leases.acquire(n)
        now = self.clock()
        starts = []
        if now >= sent_at + self.timing.ttl - self.timing.margin or self._stop.is_set():
            # The answer came back too late to be safe (a partition held it): these leases
            # may be expiring already. Start nothing; they expire and another round (or
            # node) takes them with a new epoch.
            logger.warning("cluster: {} lease(s) acquired too late; not started", len(got))
            return len(got)
        with self._lock:
            for a in got:
                self.keeper.acquired(a.instance_id, a.epoch, sent_at)
                taken = a.previous_owner is not None and a.previous_owner != self.node_id
                if taken and self.timing.takeover_delay > 0:
                    # Taken from a node that stopped renewing: it closed its session before
                    # the expiry; wait a throttle more before this node connects the number.
                    # Counted from this acquisition, not from the expiry: a crashed node's
                    # session can outlive its process on the network's side (the failover
                    # test's simulator counted conflicts when the delay ran from the expiry).
                    due = now + self.timing.takeover_delay
                    self._pending[a.instance_id] = (due, a.epoch)
                else:
                    starts.append((a.instance_id, a.epoch))
        self.stats.acquired += len(got)
        if got:
            logger.info("cluster: {} lease(s) acquired", len(got))
        for iid, epoch in starts:
            self.hooks.start(iid, epoch)
        if len(starts) < len(got):
            self._due.set()  # the watchdog starts them when their takeover delay is over
        return len(got)

    def _give_back(self, n: int, why: str) -> None:
        with self._lock:
            candidates = sorted(
                i for i in self.keeper.held() if i not in self._releasing and i not in self._pending
            )[:n]
            self._releasing.update(candidates)
        for iid in candidates:
            self.hooks.stop(iid, f"handed over ({why})", True)
