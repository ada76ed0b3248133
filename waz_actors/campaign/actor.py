"""The thin actor per running campaign, and the manager that starts, wakes and stops them.

The actor only routes: a Tick (its own timer) or a Wake (a command changed the campaign) runs
one `Feeder.step()`; the step's answer says whether to tick again. It waits on instance actors
(cancel, contact.check) through the Fleet's Futures; no instance actor ever waits on a campaign
actor, so this cannot deadlock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pykka
from loguru import logger

from waz_actors.campaign.feeder import Feeder, FleetPort, Limits, Publish
from waz_actors.clock import RealClock, Scheduler, TimerHandle
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

    def limits(self) -> Limits:
        return Limits(
            max_queue=self.cfg.queue.max_size, warning_success=self.cfg.health.warning_success
        )

    def wake(self, campaign_id: str) -> None:
        """Run a feeder pass for the campaign now, starting its actor if it has none."""
        with self._lock:
            if self._closed:
                return
            ref = self._actors.get(campaign_id)
            if ref is not None and ref.is_alive():
                ref.tell(Wake())
                return
            feeder = Feeder(
                campaign_id,
                self.store,
                self.fleet,
                self.clock,
                self.publish,
                self.limits(),
                process_started=self.started,
            )
            self._actors[campaign_id] = CampaignActor.start(
                feeder, self.scheduler, self.tick, self.clock.time_scale, self
            )

    def forget(self, campaign_id: str, ref: pykka.ActorRef[CampaignActor]) -> None:
        with self._lock:
            if self._actors.get(campaign_id) is ref:
                del self._actors[campaign_id]

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._actors)

    def resume_all(self) -> int:
        """At start-up: the campaigns that were running or scheduled carry on; a paused or
        cancelled one whose take-back a crash interrupted (messages still queued) finishes it."""
        n = 0
        for state in ("running", "scheduled", "paused", "cancelled"):
            for camp in self.store.campaigns.list_all(state=state):
                if state in ("paused", "cancelled"):
                    counts = self.store.campaigns.counts(camp.campaign_id)
                    left = counts["queued"] + (counts["pending"] if state == "cancelled" else 0)
                    if not left:
                        continue
                self.wake(camp.campaign_id)
                n += 1
        return n

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            refs = list(self._actors.values())
            self._actors.clear()
        for ref in refs:
            try:
                ref.stop(timeout=timeout)
            except pykka.ActorDeadError:
                pass


__all__ = ["CampaignActor", "Manager", "Tick", "Wake"]
