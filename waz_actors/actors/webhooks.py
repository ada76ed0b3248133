"""Webhook delivery: a dedicated asyncio thread, owned by a thin actor, away from the hot path.

The `Deliverer` claims due deliveries from the store's outbox in batches (the head of each
(webhook, lane) only, so one webhook sees one instance's events in order), POSTs them signed with
httpx, at most `webhooks.concurrency` at once, and writes each outcome (policy/webhooks.py
`judge`) back through the group commit before the lane may move on. A per-webhook circuit breaker
(policy/breaker.py) keeps a dead receiver to one probe at a time. Sends and the control socket
never wait on any of this: the tap in the store only writes rows, and this thread only reads
and posts.

`WebhookActor` owns the thread's life (started and stopped with the daemon) and routes wake-ups;
the logic is in the plain class, tested without the actor.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import Future
from typing import Any

import httpx
import pykka
from loguru import logger

from waz_actors import __version__
from waz_actors.clock import Clock
from waz_actors.config import WebhooksConfig
from waz_actors.net import webhook_http
from waz_actors.policy import webhooks as rules
from waz_actors.policy.breaker import BreakerState, CircuitBreaker
from waz_actors.policy.webhook_lanes import Due, Lanes
from waz_actors.store.webhooks import Webhooks

EXPIRE_EVERY = 1.0  # real seconds between sweeps of the lanes for deliveries past max_age
LANES_CAP = 20000  # pending deliveries held in memory at most (more wait in the store)
MIN_WAIT = 0.002  # real seconds: the shortest sleep between two looks at the outbox


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
        self, hooks: Webhooks, cfg: WebhooksConfig, clock: Clock, time_scale: float
    ) -> None:
        self.hooks = hooks
        self.cfg = cfg
        self.clock = clock
        self.time_scale = time_scale
        self.policy = policy_of(cfg, time_scale)
        self.breakers: dict[str, CircuitBreaker] = {}
        self.busy: set[str] = set()  # "webhook_id lane" in flight
        self.stats = {"attempts": 0, "delivered": 0, "failed": 0, "dead": 0, "retried": 0}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._next_at: float | None = None  # wall time the next waiting delivery falls due
        self.lanes = Lanes(LANES_CAP)
        self._changes = -1  # the store's webhook changes seen: reload on a difference
        self._thread = threading.Thread(target=self._run, name="waz-webhooks", daemon=True)
        self._ready = threading.Event()

    # -- any thread --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def wake(self) -> None:
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass  # the loop closed meanwhile: stopping

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        self.wake()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the delivery thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            logger.exception("webhook delivery thread failed")

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

    def _held(self, now: float) -> list[str]:
        """Webhooks whose breaker lets nothing through now (open before its probe, or a probe
        in flight): their deliveries are not even claimed."""
        out = []
        for webhook_id, b in self.breakers.items():
            if b.state is BreakerState.HALF_OPEN:
                out.append(webhook_id)
            elif b.state is BreakerState.OPEN:
                probe_at = b.next_probe_at()
                if probe_at is None or now < probe_at:
                    out.append(webhook_id)
        return out

    def _next_probe_in(self, now: float) -> float | None:
        waits = [
            (p - now) * self.time_scale
            for b in self.breakers.values()
            if (p := b.next_probe_at()) is not None
        ]
        return max(0.0, min(waits)) if waits else None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready.set()
        limits = httpx.Limits(
            max_connections=self.cfg.concurrency, max_keepalive_connections=self.cfg.concurrency
        )
        timeout = httpx.Timeout(self.cfg.timeout, connect=self.cfg.connect_timeout)
        tasks: set[asyncio.Task[None]] = set()
        last_expire = 0.0
        # TCP_NODELAY: httpcore writes a request's headers and body apart, and Nagle would hold
        # the body for the receiver's delayed ACK (40 ms a request on Linux).
        transport = httpx.AsyncHTTPTransport(
            limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        async with httpx.AsyncClient(
            transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
        ) as client:
            while not self._stopping:
                self._wake.clear()
                if time.monotonic() - last_expire >= EXPIRE_EVERY:
                    last_expire = time.monotonic()
                    await self._expire()
                await self._refresh()
                room = self.cfg.concurrency - len(tasks)
                claimed = self._claim(room) if room > 0 else []
                for d in claimed:
                    task = asyncio.create_task(self._deliver(client, d))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                # Wait for a wake-up (a commit with new deliveries, a delivery done) or the
                # next retry or probe falling due.
                await self._sleep(full=True)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _refresh(self) -> None:
        """Bring the lanes up to date: everything again after a change of the webhooks, else
        only the rows written since the last look."""
        if self.hooks.changes != self._changes:
            changes = self.hooks.changes
            # The outcomes posted so far must be on disk before the store is read again, or a
            # delivery done a moment ago would be loaded (and sent) once more.
            try:
                await asyncio.wrap_future(self.hooks.barrier())
            except Exception as e:  # a failed commit (a full disk, say): the next look retries
                logger.warning("webhooks: the store did not commit, lanes not reloaded: {}", e)
                return
            self._changes = changes
            self.lanes.reset()
        room = self.lanes.room()
        if room <= 0:
            return
        try:
            rows = await asyncio.to_thread(
                self.hooks.load_pending, self.lanes.loaded, min(room, self.cfg.batch)
            )
        except Exception as e:  # the store closing under us, say
            logger.warning("webhooks: cannot read the outbox: {}", e)
            return
        self.lanes.add(rows)
        if len(rows) == self.cfg.batch:
            self._wake_soon()  # more to load: look again without waiting

    def _wake_soon(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _claim(self, limit: int) -> list[Due]:
        now = self.clock.now()
        held = set(self._held(now))
        out = []
        for d in self.lanes.take(time.time(), self.busy, held, limit):
            # allow() hands out a half-open breaker's single probe.
            if self._breaker(d.webhook_id).allow(now):
                self.busy.add(d.key)
                out.append(d)
            else:
                held.add(d.webhook_id)
        self._next_at = self.lanes.next_at(self.busy, held)
        return out

    async def _sleep(self, *, full: bool) -> None:
        assert self._wake is not None
        wait = self.cfg.poll_interval if full else 0.0
        if self._wake.is_set():
            wait = 0.0
        elif full:
            # Until the next retry or probe falls due, at the latest; never a spin (MIN_WAIT).
            probe = self._next_probe_in(self.clock.now())
            nxt = self._next_at
            for w in (probe, None if nxt is None else nxt - time.time()):
                if w is not None:
                    wait = min(wait, max(MIN_WAIT, w))
        if wait <= 0:
            await asyncio.sleep(0)
            return
        try:
            async with asyncio.timeout(wait):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _expire(self) -> None:
        """Deliveries past max_age leave their lanes as dead (in memory first, then the store;
        rows not loaded yet are judged when they are)."""
        older = time.time() - self.cfg.max_age * self.time_scale
        gone = self.lanes.expire(older, self.busy)
        if not gone:
            return
        self.stats["dead"] += len(gone)
        logger.warning("webhooks: {} deliveries dead (max_age passed)", len(gone))
        fut = self.hooks.mark_dead([d.seq for d in gone])
        fut.add_done_callback(_log_failure)

    async def _deliver(self, client: httpx.AsyncClient, d: Due) -> None:
        raw = d.body.encode()
        try:
            answer = await webhook_http.post(
                client,
                d.url,
                raw,
                headers_for(d, raw),
                allow_private=self.cfg.allow_private_targets,
                timeout=self.cfg.timeout,
            )
            await self._settle(d, answer)
        except Exception:
            logger.exception("webhook delivery {} failed", d.seq)
        finally:
            self.busy.discard(d.key)
            if self._wake is not None:
                self._wake.set()

    async def _settle(self, d: Due, answer: webhook_http.Answer) -> None:
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
        if outcome.disable:
            logger.warning("webhook {}: 410 Gone, disabled", d.webhook_id)
        fut = self.hooks.record_attempt(
            d.seq,
            status=outcome.status,
            next_at=outcome.next_at,
            code=answer.code,
            error=answer.error,
            body=answer.body,
            disable_reason="the receiver answered 410 Gone" if outcome.disable else None,
        )
        # Not awaited: the lane moves on at once, so a receiver's pace is not bound to one
        # fsync per delivery. The lanes in memory are the worker's truth; a crash before this
        # commits only means the delivery is sent again (at-least-once, same event id).
        fut.add_done_callback(_log_failure)
        self.lanes.settle(d, outcome.next_at if outcome.status == "pending" else None)


def _log_failure(fut: Future[Any]) -> None:
    if fut.exception() is not None:
        logger.opt(exception=fut.exception()).error("webhook outcome not written")


class WebhookActor(pykka.ThreadingActor):
    """Owns the delivery thread: started and stopped with the daemon. Wake-ups go straight to
    the thread's loop (call_soon_threadsafe), not through this mailbox: the store's writer
    thread sends them after every commit that wrote deliveries, and must not queue behind
    anything."""

    def __init__(self, deliverer: Deliverer) -> None:
        super().__init__()
        self.deliverer = deliverer

    def on_start(self) -> None:
        self.deliverer.start()

    def on_stop(self) -> None:
        self.deliverer.stop()


__all__ = ["Deliverer", "WebhookActor", "headers_for", "policy_of"]
