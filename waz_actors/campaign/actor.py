"""The thin actor per running campaign, and the manager that starts, wakes and stops them.

Clustered (`claims` given), a campaign is fed by the one node holding its claim
`campaign:<id>` (cluster/claims.py): `wake` claims it first (another node feeds it: nothing to
do here; that node re-reads the campaign every tick, so a command given here reaches it), an
actor whose step ends gives the claim back, a lost claim stops the actor, and `adopt` (every
`cluster.claim_scan`) takes over the campaigns nobody feeds, such as a dead node's.

The actor only routes: a Tick (its own timer) or a Wake (a command changed the campaign) runs
one `Feeder.step()`; the step's answer says whether to tick again. It waits on instance actors
(cancel, contact.check) through the Fleet's Futures; no instance actor ever waits on a campaign
actor, so this cannot deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import pykka
from loguru import logger

from waz_actors.campaign.feeder import Feeder, FleetPort, Limits, Publish
from waz_actors.clock import RealClock, Scheduler, TimerHandle
from waz_actors.cluster.keys import CAMPAIGN, campaign_key
from waz_actors.config import Config
from waz_actors.store.api import StoreAPI

TICK = 1.0  # daemon seconds between two feeder passes
MIN_REAL_TICK = 0.02  # real seconds: compressed time must not make the feeder spin
# While the last pass queued something, the next comes after this many real seconds: a campaign
# with pacing off keeps up with the queues instead of topping them up once a second.
BUSY_REAL_TICK = 0.02


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class Wake:
    pass


class CampaignActor(pykka.ThreadingActor):
    def __init__(
        self, feeder: Feeder, scheduler: Scheduler, tick: float, time_scale: float, done: Manager
    ) -> None:
        super().__init__()
        self.time_scale = time_scale
        self.feeder = feeder
        self.scheduler = scheduler
        self.tick = tick
        self.done = done
        self.timer: TimerHandle | None = None

    def on_start(self) -> None:
        self.actor_ref.tell(Tick())

    def on_receive(self, message: object) -> None:
        if not isinstance(message, Tick | Wake):
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        try:
            again = self.feeder.step()
        except Exception:
            # A store or fleet hiccup (shutting down, busy): log, try again at the next tick.
            logger.exception("campaign {}: feeder step failed", self.feeder.campaign_id)
            again = True
        if again:
            ref = self.actor_ref
            wait = self.tick
            if self.feeder.fed:
                wait = min(wait, BUSY_REAL_TICK / self.time_scale)
            self.timer = self.scheduler.call_later(wait, lambda: ref.tell(Tick()))
        else:
            self.done.forget(self.feeder.campaign_id, ref=self.actor_ref)
            self.stop()

    def on_stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class ClaimsPort(Protocol):
    """What the manager needs of cluster/claims.py's Claims."""

    def try_claim(self, key: str) -> bool: ...
    def holds(self, key: str) -> bool: ...
    def epoch(self, key: str) -> int | None: ...
    def release(self, key: str) -> None: ...
    def unclaimed(self, keys: Iterable[str]) -> list[str]: ...
    def watch(self, prefix: str, on_lost: Callable[[str], None]) -> None: ...


class Manager:
    """One actor per campaign that has work (running, scheduled, or paused/cancelled with
    messages to take back); thread-safe, used by the campaign commands and the runtime."""

    def __init__(
        self,
        cfg: Config,
        store: StoreAPI,
        fleet: FleetPort,
        clock: RealClock,
        scheduler: Scheduler,
        publish: Publish,
        claims: ClaimsPort | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.fleet = fleet
        self.clock = clock
        self.scheduler = scheduler
        self.publish = publish
        self._lock = threading.Lock()
        self._actors: dict[str, pykka.ActorRef[CampaignActor]] = {}
        self._closed = False
        self.tick = max(TICK, MIN_REAL_TICK / clock.time_scale)
        self.started = clock.wall()
        self.claims = claims
        self._scan_stop = threading.Event()
        self._scanner: threading.Thread | None = None
        if claims is not None:
            claims.watch(CAMPAIGN, self.lost)

    def limits(self) -> Limits:
        return Limits(
            max_queue=self.cfg.queue.max_size, warning_success=self.cfg.health.warning_success
        )

    def wake(self, campaign_id: str) -> None:
        """Run a feeder pass for the campaign now, starting its actor if it has none (and,
        clustered, if this node gets its claim; otherwise the holder carries on)."""
        with self._lock:
            if self._closed:
                return
            ref = self._actors.get(campaign_id)
            if ref is not None and ref.is_alive():
                ref.tell(Wake())
                return
            if self.claims is not None and not self.claims.try_claim(campaign_key(campaign_id)):
                return
            feeder = Feeder(
                campaign_id,
                self.store,
                self.fleet,
                self.clock,
                self.publish,
                self.limits(),
                process_started=self.started,
                claims=self.claims,
            )
            self._actors[campaign_id] = CampaignActor.start(
                feeder, self.scheduler, self.tick, self.clock.time_scale, self
            )

    def forget(self, campaign_id: str, ref: pykka.ActorRef[CampaignActor]) -> None:
        """The actor's work is over: give the claim back (under the lock, so a `wake` racing
        with this either reaches the old actor or claims anew)."""
        with self._lock:
            if self._actors.get(campaign_id) is ref:
                del self._actors[campaign_id]
                if self.claims is not None:
                    self.claims.release(campaign_key(campaign_id))

    def lost(self, key: str) -> None:
        """The claims' watcher: this node no longer holds the campaign (renewals failed or
        another node has it): stop feeding now. Called on the claims' fencing thread, so it
        takes no lock (`wake` may hold the manager's lock while it waits for the database):
        it only tells the actor to stop; `wake` and `running` skip a stopped actor."""
        campaign_id = key[len(CAMPAIGN) :]
        ref = self._actors.get(campaign_id)  # one dict read: atomic, no lock needed
        if ref is not None:
            logger.warning("campaign {}: claim lost; another node feeds it", campaign_id)
            ref.stop(block=False)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(c for c, ref in self._actors.items() if ref.is_alive())

    def resume_all(self) -> int:
        """At start-up: the campaigns that were running or scheduled carry on; a paused or
        cancelled one whose take-back a crash interrupted (messages still queued) finishes it.
        Clustered: those nobody feeds, up to `cluster.claims_per_round` (`adopt`)."""
        if self.claims is not None:
            return self.adopt()
        n = 0
        for campaign_id in self._with_work():
            self.wake(campaign_id)
            n += 1
        return n

    def _with_work(self, among: Callable[[list[str]], list[str]] | None = None) -> list[str]:
        """The campaigns with work, `among` narrowing each state's ids before the costlier
        check of a paused or cancelled one."""
        out: list[str] = []
        for state in ("running", "scheduled", "paused", "cancelled"):
            ids = [c.campaign_id for c in self.store.campaigns.list_all(state=state)]
            for campaign_id in among(ids) if among is not None else ids:
                if state in ("paused", "cancelled"):
                    counts = self.store.campaigns.counts(campaign_id)
                    left = counts["queued"] + (counts["pending"] if state == "cancelled" else 0)
                    if not left:
                        continue
                out.append(campaign_id)
        return out

    def adopt(self) -> int:
        """Clustered: claim and feed campaigns with work that no node holds (created on a node
        that died, or never claimed), at most `cluster.claims_per_round`."""
        claims = self.claims
        if claims is None or self._closed:
            return 0

        def nobody_feeds(ids: list[str]) -> list[str]:
            mine = set(self.running())
            keys = [campaign_key(i) for i in ids if i not in mine]
            return [k[len(CAMPAIGN) :] for k in claims.unclaimed(keys)]

        n = 0
        for campaign_id in self._with_work(nobody_feeds):
            if n >= self.cfg.cluster.claims_per_round:
                break
            self.wake(campaign_id)
            n += campaign_id in self.running()
        if n:
            logger.info("{} campaign(s) nobody fed taken over", n)
        return n

    def start_scan(self) -> None:
        """Clustered: `adopt` every `cluster.claim_scan` (daemon seconds)."""
        if self.claims is None or self._scanner is not None:
            return
        every = self.cfg.cluster.claim_scan * self.clock.time_scale

        def scan() -> None:
            while not self._scan_stop.wait(every):
                try:
                    self.adopt()
                except Exception as e:  # the database away: the next look tries again
                    logger.warning("campaigns: looking for unfed campaigns failed: {}", e)

        self._scanner = threading.Thread(target=scan, name="campaign-claims", daemon=True)
        self._scanner.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._scan_stop.set()
        if self._scanner is not None:
            self._scanner.join(timeout)
        with self._lock:
            self._closed = True
            actors = dict(self._actors)
            self._actors.clear()
        for ref in actors.values():
            try:
                ref.stop(timeout=timeout)
            except pykka.ActorDeadError:
                pass
        if self.claims is not None:  # stopped feeding: let another node go on at once
            for campaign_id in actors:
                self.claims.release(campaign_key(campaign_id))


__all__ = ["CampaignActor", "Manager", "Tick", "Wake"]
