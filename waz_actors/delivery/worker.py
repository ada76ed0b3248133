"""The delivery loop: fan out, claim, POST, judge, write back; one asyncio loop in the worker
process (delivery/__main__.py), away from the daemon's GIL.

Each look at the store is ONE write (store/webhook_outbox.py `Write`, applied by the daemon's
group commit): the outcomes of the attempts finished since the last look, the deliveries gone
dead, and the fan-out of the next events into delivery rows (planned here, from this process's
own reads), then a read of the new rows (by primary key). Looks are at least LOOK_GAP apart, so
the worker adds a bounded number of writes a second to the daemon's, whatever the traffic.
Between looks the worker runs from memory: the pending deliveries in lanes
(policy/webhook_lanes.py, the head of each (webhook, instance) only, so one webhook sees one
instance's events in order), at most `webhooks.concurrency` requests at once, a circuit breaker
per webhook (policy/breaker.py) so a dead receiver costs one probe. An outcome not written yet
when the worker dies is an attempt made again: at least once, with the same event id.

`may_deliver(webhook_id)`: the cluster's seam. Several daemons on one PostgreSQL each run a
worker; a webhook's deliveries are claimed by the node that holds its claim only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from loguru import logger

from waz_actors import __version__
from waz_actors.clock import RealClock
from waz_actors.config import WebhooksConfig
from waz_actors.net import webhook_http
from waz_actors.policy import webhooks as rules
from waz_actors.policy.breaker import BreakerState, CircuitBreaker
from waz_actors.policy.webhook_lanes import Due, Lanes
from waz_actors.store.webhook_outbox import Attempt, Outbox, Step, Write

EXPIRE_EVERY = 1.0  # real seconds between sweeps of the lanes for deliveries past max_age
LANES_CAP = 20000  # pending deliveries held in memory (more wait in the store) ...
WEBHOOK_CAP = 2000  # ... of which one webhook's at most (policy/webhook_lanes.py: fairness)
LOOK_GAP = 0.05  # real seconds between two looks at the store, at least
MIN_WAIT = 0.002  # real seconds: the shortest sleep
GONE = "the receiver answered 410 Gone"


def policy_of(cfg: WebhooksConfig, time_scale: float) -> rules.RetryPolicy:
    return rules.RetryPolicy(
        initial=cfg.retry_initial,
        maximum=cfg.retry_max,
        jitter=cfg.retry_jitter,
        max_age=cfg.max_age,
        time_scale=time_scale,
    )


def headers_for(d: Due, raw: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": f"waz-actors/{__version__}",
        "X-Waz-Signature": rules.sign(d.secret, raw),
        "X-Waz-Event-Id": d.event_id,
        "X-Waz-Event": d.event,
        "X-Waz-Attempt": str(d.attempts + 1),
    }


class Deliverer:
    def __init__(
        self,
        outbox: Outbox,
        cfg: WebhooksConfig,
        time_scale: float,
        *,
        may_deliver: Callable[[str], bool] = lambda webhook_id: True,
        holds: Callable[[str], bool] = lambda webhook_id: True,
        retry_claims: Callable[[], None] = lambda: None,
        fence: Callable[[str], tuple[str, int] | None] | None = None,
        reload_every: float | None = None,
        submit: Callable[[Write], Awaitable[Step]] | None = None,
        lanes: Lanes | None = None,
    ) -> None:
        self.outbox = outbox
        # Who writes a look (one transaction): the daemon's group commit, over the worker's
        # pipe (delivery/main.py); by default this connection (tests, tools).
        self.submit = submit or (lambda w: asyncio.to_thread(outbox.write, w))
        self.cfg = cfg
        self.time_scale = time_scale
        self.clock = RealClock(time_scale)
        self.policy = policy_of(cfg, time_scale)
        # The cluster's seam (delivery/claims.py): may_deliver before a webhook's deliveries
        # are loaded (may ask the database: called off the loop), holds before each request.
        self.may_deliver = may_deliver
        self.holds = holds
        self.retry_claims = retry_claims
        # fence (a cluster): the claim key and epoch an outcome is written under, or None
        # once the claim is lost (the outcome is dropped: the new holder sends it again).
        self.fence = fence
        self.fences: dict[int, tuple[str, int]] = {}  # seq -> fence, of attempts and dead
        self.inflight: dict[asyncio.Task[None], str] = {}  # request -> webhook_id
        # Other daemons on the database (the cluster) redeliver and disable too: read the
        # outbox again from the start this often (real s); None: only when told (`changed`).
        self.reload_every = reload_every
        self.on_disabled: Callable[[list[str]], None] = lambda ids: None
        self.breakers: dict[str, CircuitBreaker] = {}
        self.busy: set[str] = set()  # "webhook_id lane" in flight
        self.stats = {"attempts": 0, "delivered": 0, "failed": 0, "dead": 0, "retried": 0}
        self.stats.update(looks=0, fanned_events=0, fanned_deliveries=0)
        self.lanes = lanes or Lanes(LANES_CAP, WEBHOOK_CAP)
        self.attempts: list[Attempt] = []  # outcomes not written yet
        self.dead: list[int] = []
        self.changed = True  # read the outbox again from the start at the next look
        self.new_events = True  # the daemon wrote events since the last fan-out
        self.more = False  # the last look stopped at its limit: look again soon
        self._next_at: float | None = None  # wall time the next waiting delivery falls due
        self._last_look = 0.0
        self._last_reload = 0.0
        self._last_expire = 0.0
        self._wake: asyncio.Event | None = None
        self._stopping = False

    # -- the loop's own thread ----------------------------------------------------------------

    def wake(self, *, new: bool = False, changed: bool = False) -> None:
        self.new_events |= new
        self.changed |= changed
        if self._wake is not None:
            self._wake.set()

    def wake_threadsafe(self, loop: asyncio.AbstractEventLoop) -> None:
        """From another thread (the claims'): read the outbox again from the start."""
        loop.call_soon_threadsafe(lambda: self.wake(changed=True))

    def _done(self, task: asyncio.Task[None]) -> None:
        self.inflight.pop(task, None)

    def lost(self, webhook_id: str) -> None:
        """Its claim is lost: its requests in flight are cancelled (the new holder sends them;
        their outcomes would be refused anyway) and the lanes are read again without it."""
        for task, of in list(self.inflight.items()):
            if of == webhook_id:
                task.cancel()
        self.wake(changed=True)

    def lost_threadsafe(self, loop: asyncio.AbstractEventLoop, webhook_id: str) -> None:
        """From another thread (the claims')."""
        loop.call_soon_threadsafe(self.lost, webhook_id)

    def stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        async with webhook_http.session(
            self.cfg.concurrency,
            self.cfg.connect_timeout,
            self.cfg.timeout,
            allow_private=self.cfg.allow_private_targets,
        ) as session:
            while not self._stopping:
                self._wake.clear()
                if self._look_due():
                    await self._look()
                room = self.cfg.concurrency - len(self.inflight)
                for d in self._claim(room) if room > 0 else []:
                    task = asyncio.create_task(self._deliver(session, d))
                    self.inflight[task] = d.webhook_id
                    task.add_done_callback(self._done)
                await self._sleep()
            tasks = list(self.inflight)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.attempts or self.dead:  # what was done is written before the worker goes
            await self._write(fan_out=False)

    # -- looks at the store -------------------------------------------------------------------

    def _look_due(self) -> bool:
        since = time.monotonic() - self._last_look
        if since >= self.cfg.poll_interval:
            return True
        wanted = self.changed or self.new_events or self.more or bool(self.attempts or self.dead)
        return wanted and since >= LOOK_GAP

    async def _look(self) -> None:
        now = time.monotonic()
        if now - self._last_look >= self.cfg.poll_interval:
            self.new_events = True  # a wake-up lost (a full pipe), or events of another node
        self._last_look = now
        self.stats["looks"] += 1
        if now - self._last_expire >= EXPIRE_EVERY:
            self._last_expire = now
            self._expire()
        every = self.reload_every
        if every is not None and now - self._last_reload >= every:
            self.changed = True
        if self.changed:
            # what is done is written first, or the reload would bring it back as pending
            if not await self._write(fan_out=False):
                return
            self.changed = False
            self._last_reload = now
            self.lanes.reset()
        if not await self._write(fan_out=True):
            return
        # Not bounded by the room in memory: a webhook that finds none is left behind
        # (policy/webhook_lanes.py) and the others' rows still come in.
        limit = self.cfg.batch
        upto = self.lanes.loaded
        refills = self.lanes.refills()
        behind = list(self.lanes.behind)
        try:
            own, rows, mine = await asyncio.to_thread(self._load, upto, limit, refills, behind)
        except Exception as e:  # the database gone for a moment: the next look retries
            logger.warning("webhooks: cannot read the outbox: {}", e)
            return
        # Requests that ended during the read (a reload emptied the lanes before it) have
        # their outcomes here, not in the rows read back as pending.
        settled: dict[int, float | None] = {
            a.seq: a.next_at if a.status == "pending" else None for a in self.attempts
        }
        settled.update(dict.fromkeys(self.dead))
        for (webhook_id, _after, most), got in zip(refills, own, strict=True):
            self.lanes.refill(webhook_id, got, most, upto, settled)
        self.lanes.add(mine, settled)
        if rows:  # past the other nodes' rows too: a claim taken later reads them again
            self.lanes.loaded = max(self.lanes.loaded, rows[-1].seq)
        if len(rows) == limit:
            self.more = True

    def _load(
        self, after: int, limit: int, refills: list[tuple[str, int, int]], behind: list[str]
    ) -> tuple[list[list[Due]], list[Due], list[Due]]:
        """The rows of the webhooks left behind (up to `after`), the new pending rows but
        theirs, and those of them of the webhooks this worker may deliver."""
        self.retry_claims()
        own = [self.outbox.load_pending(a, n, webhook_id=w, upto=after) for w, a, n in refills]
        rows = self.outbox.load_pending(after, limit, skip=behind)
        allowed: dict[str, bool] = {}
        mine = []
        for d in rows:
            ok = allowed.get(d.webhook_id)
            if ok is None:
                ok = allowed[d.webhook_id] = self.may_deliver(d.webhook_id)
            if ok:
                mine.append(d)
        return own, rows, mine

    async def _write(self, *, fan_out: bool) -> bool:
        """One transaction: the outcomes and deaths so far, and (fan_out) the next events."""
        attempts, dead = self.attempts, self.dead
        self.attempts, self.dead = [], []
        fences = {
            s: f for s in (*(a.seq for a in attempts), *dead) if (f := self.fences.pop(s, None))
        }
        # Not bounded by the lanes' room: a webhook whose deliveries fill them must not hold
        # back the others' rows (they wait on disk, not in the events' backlog).
        rows = self.cfg.batch if fan_out else 0
        events = self.cfg.batch if rows > 0 and self.new_events else 0
        if events:
            self.new_events = False
        try:
            fan = await asyncio.to_thread(self.outbox.plan, events, rows) if events else None
            w = Write(attempts, dead, fan, fences)
            step = Step() if w.empty() else await self.submit(w)
        except Exception as e:  # a full disk, the daemon busy: keep them for the next look
            logger.warning("webhooks: the outbox write failed, retried at the next look: {}", e)
            self.attempts[:0], self.dead[:0] = attempts, dead
            self.fences.update(fences)
            self.new_events |= bool(events)
            return False
        self.more = fan is not None and step.events > 0
        self.new_events |= self.more or (fan is not None and step.events == 0)
        self.stats["fanned_events"] += step.events
        self.stats["fanned_deliveries"] += step.deliveries
        if step.disabled:
            self.changed = True  # their deliveries leave the lanes
            self.on_disabled(step.disabled)
        return True

    def _expire(self) -> None:
        """Deliveries past max_age leave their lanes as dead (in memory now, in the store at
        the next write; rows not loaded yet are judged when they are)."""
        older = time.time() - self.cfg.max_age * self.time_scale
        gone = [d for d in self.lanes.expire(older, self.busy) if self._fenced(d)]
        if gone:
            self.stats["dead"] += len(gone)
            logger.warning("webhooks: {} deliveries dead (max_age passed)", len(gone))
            self.dead.extend(d.seq for d in gone)

    def _fenced(self, d: Due) -> bool:
        """Note the claim epoch `d`'s outcome is written under; False: the claim is lost (the
        outcome is dropped, the new holder judges the delivery again)."""
        if self.fence is None:
            return True
        f = self.fence(d.webhook_id)
        if f is None:
            return False
        self.fences[d.seq] = f
        return True

    # -- claiming and sending -----------------------------------------------------------------

    def _breaker(self, webhook_id: str) -> CircuitBreaker:
        b = self.breakers.get(webhook_id)
        if b is None:
            b = CircuitBreaker(
                failure_threshold=self.cfg.breaker_failures,
                reset_timeout=self.cfg.breaker_reset,
                reset_timeout_max=max(self.cfg.breaker_reset, self.cfg.retry_max),
            )
            self.breakers[webhook_id] = b
        return b

    def _held(self, now: float) -> set[str]:
        """Webhooks whose breaker lets nothing through now (open before its probe, or a probe
        in flight): their deliveries are not even claimed."""
        out = set()
        for webhook_id, b in self.breakers.items():
            if b.state is BreakerState.HALF_OPEN:
                out.add(webhook_id)
            elif b.state is BreakerState.OPEN:
                probe_at = b.next_probe_at()
                if probe_at is None or now < probe_at:
                    out.add(webhook_id)
        return out

    def _claim(self, limit: int) -> list[Due]:
        now = self.clock.now()
        held = self._held(now)
        out = []
        for d in self.lanes.take(time.time(), self.busy, held, limit):
            if not self.holds(d.webhook_id):  # its claim went to another node
                self.changed = True
                held.add(d.webhook_id)
                continue
            # allow() hands out a half-open breaker's single probe.
            if self._breaker(d.webhook_id).allow(now):
                self.busy.add(d.key)
                out.append(d)
            else:
                held.add(d.webhook_id)
        self._next_at = self.lanes.next_at(self.busy, held)
        return out

    async def _sleep(self) -> None:
        assert self._wake is not None
        if self._wake.is_set():
            await asyncio.sleep(0)
            return
        since = time.monotonic() - self._last_look
        wait = self.cfg.poll_interval - since
        if self.changed or self.new_events or self.more or self.attempts or self.dead:
            wait = min(wait, LOOK_GAP - since)
        probes = [
            (p - self.clock.now()) * self.time_scale
            for b in self.breakers.values()
            if (p := b.next_probe_at()) is not None
        ]
        nxt = self._next_at
        for w in (min(probes, default=None), None if nxt is None else nxt - time.time()):
            if w is not None:
                wait = min(wait, w)
        try:
            async with asyncio.timeout(max(MIN_WAIT, wait)):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _deliver(self, session: aiohttp.ClientSession, d: Due) -> None:
        raw = d.body.encode()
        try:
            answer = await webhook_http.post(
                session,
                d.url,
                raw,
                headers_for(d, raw),
                allow_private=self.cfg.allow_private_targets,
            )
            self._settle(d, answer)
        except Exception:
            logger.exception("webhook delivery {} failed", d.seq)
        finally:
            self.busy.discard(d.key)
            if self._wake is not None:
                self._wake.set()

    def _settle(self, d: Due, answer: webhook_http.Answer) -> None:
        wall = time.time()
        outcome = rules.judge(
            answer.code,
            attempts=d.attempts + 1,
            created_at=d.created_at,
            now_wall=wall,
            policy=self.policy,
            retry_after_s=rules.retry_after(answer.retry_after, wall),
        )
        now = self.clock.now()
        breaker = self._breaker(d.webhook_id)
        if outcome.breaker_failure:
            if breaker.record_failure(now, answer.error or f"HTTP {answer.code}"):
                logger.warning("webhook {}: breaker open ({})", d.webhook_id, breaker.last_reason)
        elif answer.code is not None:
            breaker.record_success(now)  # the receiver answered: it is up
        self.stats["attempts"] += 1
        key = {"pending": "retried"}.get(outcome.status, outcome.status)
        self.stats[key] = self.stats.get(key, 0) + 1
        self.lanes.settle(d, outcome.next_at if outcome.status == "pending" else None)
        if not self._fenced(d):
            return
        if outcome.disable:
            logger.warning("webhook {}: 410 Gone, disabled", d.webhook_id)
        # Written at the next look, with the others: the lane moves on at once. The lanes in
        # memory are the worker's truth; a crash before the write only means the delivery is
        # sent again (at-least-once, same event id).
        self.attempts.append(
            Attempt(
                d.seq,
                outcome.status,
                outcome.next_at,
                answer.code,
                answer.error,
                answer.body,
                wall,
                GONE if outcome.disable else None,
            )
        )


def summary(stats: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in stats.items())


__all__ = ["Deliverer", "headers_for", "policy_of", "summary"]
