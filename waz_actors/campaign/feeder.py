"""The logic of one running campaign: a plain class the campaign actor calls on every tick.

Each `step()` reads the campaign's durable state and acts on it, so a step after a crash or a
restart carries on where the last one stopped:

1. copy final message statuses onto recipients (`sync`);
2. safety stops: an instance of the campaign banned (once per ban: after a resume the banned
   instance is only skipped), or fewer than `warning_success` (60 %, the
   seeds' critical border) of the last FAILURE_WINDOW sends sent -> the campaign pauses itself
   and raises a `daemon.alarm`;
3. take back: the queued, unsent messages of the campaign on an instance that went bad
   (cooldown, tripped, banned, logged out, stopped, deleted), on every instance when the
   campaign is paused or cancelled or its window closed, are cancelled and their recipients go
   back to `pending` with the next attempt's idempotency key. Only a message never handed to
   the driver is taken back: one being sent, or tried before (a retry waiting, an unknown
   outcome after a dropped session or a crash), may have reached the phone, so it stays where
   it is and its instance's queue resends it under its own id; so does every message queued
   before this daemon process started. A recipient is never sent twice;
4. check numbers (`check_numbers`): contact.check in batches of CHECK_BATCH, not on WhatsApp ->
   `skipped`;
5. feed: round-robin over the campaign's instances that are `online` and not critical, each up
   to its free room below `queue.max_size` minus the headroom kept for direct sends
   (HEADROOM, a fifth of the queue): direct `message.send`s always find room. With a delay
   {min, max}, an instance gets its next campaign message only once the previous one left its
   queue and a random delay passed: the delay comes on top of the outbox's pacing;
6. `done` once nothing is pending or queued; a `campaign.progress` event at most once a second.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from waz_actors.campaign.window import in_window
from waz_actors.clock import Clock
from waz_actors.cluster.keys import campaign_key
from waz_actors.drivers.base import CheckContacts, DriverRequest
from waz_actors.errors import WazError
from waz_actors.store.api import StoreAPI
from waz_actors.store.campaigns import Assignment, CampaignRecord, RecipientRecord, idempotency_key
from waz_actors.store.records import MessageRecord
from waz_actors.types import MessageStatus, new_message_id

FAILURE_WINDOW = 50  # sends the safety stop looks at
CHECK_BATCH = 500  # numbers per contact.check
HEADROOM = 0.2  # of queue.max_size, left to direct sends
BAD_STATES = frozenset({"cooldown", "tripped", "banned", "logged_out", "stopped"})
PROGRESS_EVERY = 1.0  # wall seconds between two campaign.progress events of one campaign


class FleetPort(Protocol):
    """What the feeder needs of the fleet (actors/fleet.py's Fleet has it)."""

    accepting: bool

    def snapshot(self, instance_id: str) -> Any: ...
    def submit(self, record: MessageRecord) -> None: ...
    def cancel(
        self,
        instance_id: str,
        message_id: str,
        timeout: float | None = None,
        *,
        untried_only: bool = False,
    ) -> str: ...
    def query(
        self, instance_id: str, request: DriverRequest, timeout: float | None = None
    ) -> Any: ...


class ClaimPort(Protocol):
    """Clustered: the node's claims (cluster/claims.py). A feeder works only while its node
    holds `campaign:<id>`, and fences its queueing writes with the claim's epoch."""

    def holds(self, key: str) -> bool: ...
    def epoch(self, key: str) -> int | None: ...


Publish = Callable[[str, Mapping[str, Any]], None]


@dataclass
class Limits:
    max_queue: int = 100
    warning_success: float = 0.6
    headroom: float = HEADROOM

    @property
    def campaign_cap(self) -> int:
        """The most messages an instance's queue may hold before the campaign stops feeding."""
        return max(1, self.max_queue - max(1, int(self.max_queue * self.headroom)))


@dataclass
class _Timers:
    next_at: dict[str, float] = field(default_factory=dict)


class Feeder:
    def __init__(
        self,
        campaign_id: str,
        store: StoreAPI,
        fleet: FleetPort,
        clock: Clock,
        publish: Publish,
        limits: Limits,
        rng: random.Random | None = None,
        process_started: float = 0.0,
        claims: ClaimPort | None = None,
    ) -> None:
        self.campaign_id = campaign_id
        self.claims = claims  # None: one daemon, no claim needed
        self.claim_key = campaign_key(campaign_id)
        # Wall time this daemon process started: only messages queued since then may be taken
        # back. One queued by an earlier process may have been handed to the driver just before
        # a crash whose "sending" write never reached the disk (those writes are posted).
        self.process_started = process_started
        self.store = store
        self.fleet = fleet
        self.clock = clock
        self.publish = publish
        self.limits = limits
        self.rng = rng or random.Random()
        self.timers = _Timers()
        self.turn = 0  # round-robin start
        self.since = clock.wall()  # the safety stop counts outcomes from here (start, resume)
        self.last_progress = 0.0
        # Instances already banned when this feeder began (the operator resumed knowing it):
        # skipped, their share goes to the others, but they do not pause the campaign again.
        self.known_bans: set[str] | None = None
        self.fed = 0  # messages the last step queued: the actor comes back sooner while feeding

    # ------------------------------------------------------------------ the step

    def step(self) -> bool:
        """One pass; False when the campaign needs no more passes (ended, paused, gone, or
        its claim lost: another node feeds it now)."""
        if self.claims is not None and not self.claims.holds(self.claim_key):
            return False
        camps = self.store.campaigns
        camp = camps.get(self.campaign_id)
        if camp is None:
            return False
        if camp.state == "scheduled":
            if camp.start_at is not None and camp.start_at > self.clock.wall():
                return True
            camps.set_state(self.campaign_id, "running", only_if=("scheduled",)).result()
            self._state_event(camp, "running")
            camp = camps.get(self.campaign_id)
            assert camp is not None
        if camp.state in ("paused", "cancelled", "done"):
            self._take_back(camp, everywhere=True)
            if camp.state == "cancelled":
                camps.cancel_pending(self.campaign_id).result()
            camps.sync(self.campaign_id).result()
            self._progress(camp, force=True)
            return False
        if camp.state != "running":
            return False
        camps.sync(self.campaign_id).result()
        stop = self._safety_stop(camp)
        if stop is not None:
            self.pause(camp, stop)
            return False
        open_now = in_window(self.clock.wall(), camp.window)
        self._take_back(camp, everywhere=not open_now)
        if open_now and self.fleet.accepting:
            if camp.check_numbers:
                self._check_numbers(camp)
            self.fed = self._feed(camp)
        else:
            self.fed = 0
        counts = camps.counts(self.campaign_id)
        if counts["pending"] == 0 and counts["queued"] == 0:
            camps.set_state(self.campaign_id, "done", only_if=("running",)).result()
            self._state_event(camp, "done", counts)
            return False
        self._progress(camp, counts=counts)
        return True

    def pause(self, camp: CampaignRecord, reason: str) -> None:
        """A safety stop: pause, hold what is queued, raise an alarm."""
        moved = self.store.campaigns.set_state(
            self.campaign_id, "paused", only_if=("running",), reason=reason
        ).result()
        if not moved:
            return
        self._take_back(camp, everywhere=True)
        body = {
            "time": self.clock.wall(),
            "kind": "campaign_paused",
            "message": f"campaign {self.campaign_id} paused: {reason}",
            "tenant": camp.tenant,
            "instance_id": None,
            "campaign_id": self.campaign_id,
        }
        logger.warning("alarm campaign_paused: {}", body["message"])
        self.store.log_event("daemon.alarm", body)
        self.publish("daemon.alarm", body)
        self._state_event(camp, "paused", reason=reason)

    # ------------------------------------------------------------------ parts

    def _safety_stop(self, camp: CampaignRecord) -> str | None:
        banned = set()
        for iid in camp.instance_ids:
            snap = self.fleet.snapshot(iid)
            if snap is not None and snap.state == "banned":
                banned.add(iid)
        if self.known_bans is None:
            self.known_bans = banned
        new = sorted(banned - self.known_bans)
        if new:
            return f"instance {new[0]} is banned"
        outcomes = self.store.campaigns.recent_outcomes(
            self.campaign_id, FAILURE_WINDOW, since=self.since
        )
        if len(outcomes) >= FAILURE_WINDOW:
            rate = outcomes.count("sent") / len(outcomes)
            if rate < self.limits.warning_success:
                return f"success rate {rate:.0%} over the last {len(outcomes)} sends"
        return None

    def _usable(self, snap: Any) -> bool:
        if snap is None or snap.state != "online":
            return False
        rate = snap.success_rate
        return rate is None or rate >= self.limits.warning_success

    def _take_back(self, camp: CampaignRecord, *, everywhere: bool) -> int:
        moved = 0
        for r in self.store.campaigns.queued_on(self.campaign_id):
            assert r.instance_id is not None and r.message_id is not None
            if r.updated_at < self.process_started:
                continue
            if not everywhere:
                snap = self.fleet.snapshot(r.instance_id)
                if snap is not None and snap.state not in BAD_STATES:
                    continue
            if self._cancel(r):
                moved += 1
        if moved:
            logger.info("campaign {}: {} message(s) taken back", self.campaign_id, moved)
        return moved

    def _cancel(self, r: RecipientRecord) -> bool:
        assert r.instance_id is not None and r.message_id is not None
        try:
            status = self.fleet.cancel(r.instance_id, r.message_id, untried_only=True)
        except WazError:  # being sent, already ended, instance gone or busy: leave it be
            return False
        if status != MessageStatus.CANCELLED:
            return False
        return self.store.campaigns.release(r.seq, r.message_id).result()

    def _check_numbers(self, camp: CampaignRecord) -> None:
        batch = self.store.campaigns.unchecked(self.campaign_id, CHECK_BATCH)
        if not batch:
            return
        for iid in self._online(camp):
            numbers = tuple(r.number for r in batch)
            try:
                found = self.fleet.query(iid, CheckContacts("", numbers), 30.0)
            except Exception as e:
                logger.info("campaign {}: contact.check on {}: {}", self.campaign_id, iid, e)
                continue
            on = {str(c["number"]) for c in found if c.get("on_whatsapp")}
            self.store.campaigns.mark_checked(
                self.campaign_id, sorted(on), [n for n in numbers if n not in on]
            ).result()
            return

    def _online(self, camp: CampaignRecord) -> list[str]:
        ids = list(camp.instance_ids)
        k = self.turn % len(ids) if ids else 0
        ids = ids[k:] + ids[:k]
        return [i for i in ids if self._usable(self.fleet.snapshot(i))]

    def _room(self, camp: CampaignRecord, queued: Mapping[str, int]) -> dict[str, int]:
        """How many messages each usable instance may take now."""
        now = self.clock.now()
        room: dict[str, int] = {}
        for iid in self._online(camp):
            free = self.limits.campaign_cap - self.store.pending_count(iid)
            if free <= 0:
                continue
            if camp.delay_max > 0:
                if queued.get(iid, 0) > 0:
                    self.timers.next_at.pop(iid, None)
                    continue
                due = self.timers.next_at.setdefault(
                    iid, now + self.rng.uniform(camp.delay_min, camp.delay_max)
                )
                if now < due:
                    continue
                free = 1
            room[iid] = free
        return room

    def _feed(self, camp: CampaignRecord) -> int:
        fence = None
        if self.claims is not None:
            epoch = self.claims.epoch(self.claim_key)
            if epoch is None:
                return 0
            fence = (self.claim_key, epoch)
            # Other nodes send and accept for these instances: this node's counters drift.
            self.store.campaigns.refresh_pending(camp.instance_ids).result()
        queued: dict[str, int] = {}
        for r in self.store.campaigns.queued_on(self.campaign_id):
            if r.instance_id is not None:
                queued[r.instance_id] = queued.get(r.instance_id, 0) + 1
        room = self._room(camp, queued)
        total = sum(room.values())
        if total == 0:
            return 0
        batch = self.store.campaigns.next_pending(
            self.campaign_id, total, checked_only=camp.check_numbers
        )
        plan: list[Assignment] = []
        order = [i for i in room]
        while batch and order:
            for iid in list(order):
                if not batch:
                    break
                if room[iid] <= 0:
                    order.remove(iid)
                    continue
                room[iid] -= 1
                r = batch.pop(0)
                plan.append(Assignment(r.seq, self._message(camp, iid, r)))
        self.turn += 1
        if not plan:
            return 0
        results = self.store.campaigns.assign(
            plan, max_queue=self.limits.campaign_cap, fence=fence
        ).result()
        fed = 0
        for a, result in zip(plan, results, strict=True):
            if result == "queued":
                self.fleet.submit(a.message)
                self.timers.next_at.pop(a.message.instance_id, None)
                fed += 1
        return fed

    def _message(self, camp: CampaignRecord, iid: str, r: RecipientRecord) -> MessageRecord:
        """The recipient's one message: its text was rendered when it was added (the text
        actually sent is the message's), its key ties it to the recipient and the attempt."""
        now = self.clock.wall()
        return MessageRecord(
            message_id=new_message_id(),
            instance_id=iid,
            tenant=camp.tenant,
            to=r.number,
            text=r.text,
            media=camp.media,
            status=str(MessageStatus.QUEUED),
            attempts=0,
            last_error=None,
            wa_id=None,
            idempotency_key=idempotency_key(self.campaign_id, r.number, r.attempt),
            created_at=now,
            updated_at=now,
            expires_at=None,
        )

    # ------------------------------------------------------------------ events

    def _counts_body(
        self, camp: CampaignRecord, counts: Mapping[str, int] | None
    ) -> dict[str, Any]:
        c = dict(counts) if counts is not None else self.store.campaigns.counts(self.campaign_id)
        return {
            "time": self.clock.wall(),
            "tenant": camp.tenant,
            "instance_id": None,
            "campaign_id": self.campaign_id,
            "name": camp.name,
            "counts": c,
        }

    def _state_event(
        self,
        camp: CampaignRecord,
        state: str,
        counts: Mapping[str, int] | None = None,
        reason: str | None = None,
    ) -> None:
        body = {**self._counts_body(camp, counts), "state": state, "reason": reason}
        self.store.log_event("campaign.state", body)
        self.publish("campaign.state", body)

    def _progress(
        self, camp: CampaignRecord, counts: Mapping[str, int] | None = None, force: bool = False
    ) -> None:
        wall = self.clock.wall()
        if not force and wall - self.last_progress < PROGRESS_EVERY:
            return
        self.last_progress = wall
        self.publish("campaign.progress", {**self._counts_body(camp, counts), "state": camp.state})


__all__ = ["BAD_STATES", "FAILURE_WINDOW", "ClaimPort", "Feeder", "FleetPort", "Limits"]
