"""The connection life cycle of one instance: when it may connect, and what each end means.

At most one session is open (invariant 1): `close` ends it fully, and events of an older
session are recognised by their generation and ignored. Every policy (throttle, breaker,
daemon-wide gate) is asked before a session opens; a failure waits out a backoff, a 440
conflict a cooldown (invariant 3), a ban its term.
"""

from __future__ import annotations

from typing import Any

from waz_actors.actors.instance.context import Context
from waz_actors.actors.instance.outbox import Outbox
from waz_actors.actors.instance.pairing import Pairing
from waz_actors.actors.messages import FromDriver
from waz_actors.drivers import base as driver
from waz_actors.drivers import sessions
from waz_actors.errors import InvalidState
from waz_actors.policy.backoff import BackoffPolicy
from waz_actors.policy.breaker import BreakerState, CircuitBreaker
from waz_actors.policy.conflicts import ConflictHistory
from waz_actors.policy.liveness import Liveness
from waz_actors.policy.throttle import ConnectThrottle
from waz_actors.types import InstanceState as S


class Connection:
    def __init__(
        self, ctx: Context, outbox: Outbox, pairing: Pairing, conflicts: list[float] | None
    ) -> None:
        self.ctx = ctx
        self.outbox = outbox
        self.pairing = pairing
        cfg = ctx.cfg
        self.breaker = CircuitBreaker.from_config(cfg.breaker)
        self.throttle = ConnectThrottle.from_config(cfg.connection)
        self.backoff = BackoffPolicy.from_config(cfg.connection)
        self.conflicts = ConflictHistory.from_config(cfg.conflict, self._restore(conflicts))
        self.liveness = Liveness.from_config(cfg.connection)
        self.keepalive_failures = 0  # the library's keep-alive timeouts (whatsmeow)
        self.driver: driver.Driver | None = None
        # Sessions open through it: a cluster's fence closes them from its own thread.
        self.switch = ctx.deps.sessions.switch(ctx.id)
        self.generation = 0  # of the current session; bumped when one opens or closes
        self.online_at: float | None = None
        self.online_total = 0.0
        self.connect_attempts = 0
        self.backoff_attempt = 0
        self.next_attempt: float | None = None  # daemon time of the next planned attempt

    def _restore(self, known: list[float] | None) -> list[float]:
        """Conflicts survive restarts: convert stored wall times to this clock's daemon time.

        `known`: the wall times already read for the whole fleet at start-up (one query for
        thousands of instances); None reads this instance's own."""
        ctx = self.ctx
        wall = ctx.clock.wall()
        scale = ctx.cfg.daemon.time_scale
        since = wall - ctx.cfg.conflict.window * scale
        now = ctx.clock.now()
        walls = ctx.deps.store.conflicts_since(ctx.id, since) if known is None else known
        return [now - (wall - t) / scale for t in walls if t >= since]

    def reset(self) -> None:
        """Operator override: close the breaker and forget the cooldown and the backoff."""
        self.breaker.reset()
        self.throttle = ConnectThrottle.from_config(self.ctx.cfg.connection)
        self.backoff_attempt = 0

    # ------------------------------------------------------------------ opening

    def connect(self, why: str, *, force_now: bool = False, gated: bool = False) -> None:
        """Open a session if every policy allows it now; otherwise schedule the attempt."""
        ctx = self.ctx
        if self.driver is not None or ctx.desired != "running" or self.outbox.draining is not None:
            return
        now = ctx.clock.now()
        # `gated`: every policy said yes when the gate slot was reserved (the breaker may even
        # have handed out its one probe then); asking again would refuse our own probe.
        if not self.throttle.allowed(now) and not (force_now or gated):
            self.wait_then_connect(self.throttle.next_allowed(now) - now, S.BACKOFF, why)
            return
        if not (force_now or gated) and not self.breaker.allow(now):
            ctx.set_state(S.TRIPPED, self.breaker.last_reason or "circuit breaker open")
            self.schedule_probe()
            return
        delay = 0.0 if gated else ctx.deps.gate.reserve(now)
        if delay > 0:
            # Staggered start: the slot is reserved, so the timer connects without asking again.
            state = ctx.state if ctx.state != S.STOPPED else S.BACKOFF
            self.wait_then_connect(delay, state, f"staggered: {why}", gated=True)
            return
        self.throttle.record_attempt(now)
        self.connect_attempts += 1
        self.generation += 1
        gen = self.generation
        post = ctx.post

        def sink(ev: driver.DriverEvent) -> None:
            post(FromDriver(gen, ev))

        dctx = driver.DriverContext(
            instance_id=ctx.id,
            settings=ctx.record.settings,
            state_dir=str(ctx.cfg.state_dir),
            sink=sink,
            session_url=sessions.session_url(ctx.cfg),
        )
        if not self.switch.may_open():
            # Fenced: this node does not hold the lease (any more). The supervisor stops this
            # actor; until then it builds and opens nothing.
            ctx.log.warning("not connected: this node does not hold the instance's lease")
            return
        try:
            drv = ctx.deps.drivers[ctx.record.driver](dctx)
            if not self.switch.open(drv):
                # Fenced since the question above: the driver was built for nothing.
                ctx.log.warning("not connected: this node does not hold the instance's lease")
                _discard(drv, ctx.log)
                return
            self.driver = drv
            ctx.set_state(S.CONNECTING, why)
            ctx.timers.schedule("connect_timeout", ctx.cfg.connection.timeout)
            if self.pairing.phone:
                self.request_pair_code(self.pairing.phone)
        except Exception as e:
            # A broken driver is a failed attempt (backoff, then the breaker), not a crash loop.
            ctx.log.exception("driver {} failed to connect", ctx.record.driver)
            ctx.alarm("driver_error", f"driver {ctx.record.driver} failed: {e}")
            self.failed(f"driver error: {e}")

    def wait_then_connect(
        self, delay: float, state: S, reason: str, *, gated: bool = False
    ) -> None:
        ctx = self.ctx
        self.next_attempt = ctx.clock.now() + max(0.0, delay)
        ctx.timers.schedule("connect", max(0.0, delay), payload=(reason, gated))
        if state != ctx.state or reason != ctx.last_reason:
            ctx.set_state(state, reason)
        else:
            ctx.publish_snapshot()

    def schedule_probe(self) -> None:
        at = self.breaker.next_probe_at()
        if at is not None:
            self.next_attempt = at
            self.ctx.timers.schedule("probe", max(0.0, at - self.ctx.clock.now()))
            self.ctx.publish_snapshot()

    # ------------------------------------------------------------------ closing

    def close(self, reason: str, *, delete_session: bool = False) -> None:
        """Close the session fully before anything else may open one (invariant 1).

        `delete_session` (instance.delete): a driver that can drops its stored login with the
        session (whatsmeow also frees its host slot); the supervisor removes the files after."""
        ctx = self.ctx
        ctx.timers.cancel("connect_timeout", "pairing_deadline", "stable", "processing", "liveness")
        if self.online_at is not None:
            self.online_total += ctx.clock.now() - self.online_at
            self.online_at = None
        drv, self.driver = self.driver, None
        self.generation += 1  # anything the old session still had in our mailbox is stale
        if drv is not None:
            self.switch.closed(drv)
            try:
                forget = getattr(drv, "delete_session", None) if delete_session else None
                if forget is not None:
                    forget()
                else:
                    drv.disconnect()
            except Exception:
                ctx.log.exception("driver disconnect failed")
        self.outbox.requeue_in_flight(reason)
        self.pairing.forget()

    def request_pair_code(self, phone: str) -> None:
        """Through the switch: a driver may open a session for it (the sim does)."""
        if self.driver is not None and not self.switch.pair_code(self.driver, phone):
            self.ctx.log.warning("no pairing code: this node does not hold the instance's lease")

    def failed(self, reason: str, code: int | None = None) -> None:
        """A failed attempt, or a session that dropped before it was stable."""
        ctx = self.ctx
        now = ctx.clock.now()
        ctx.last_code = code
        tripped = self.breaker.record_failure(now, reason)
        self.close(reason)
        if tripped or self.breaker.state != BreakerState.CLOSED:
            ctx.set_state(S.TRIPPED, f"circuit breaker open: {reason}", code=code)
            ctx.alarm("breaker_open", f"circuit breaker tripped: {reason}")
            self.schedule_probe()
            return
        self.backoff_attempt += 1
        delay = self.backoff.delay(self.backoff_attempt)
        delay = max(delay, self.throttle.next_allowed(now) - now)
        self.wait_then_connect(delay, S.BACKOFF, reason)

    def was_stable(self) -> bool:
        return (
            self.online_at is not None
            and self.ctx.clock.now() - self.online_at >= self.ctx.cfg.connection.stable_after
        )

    # ------------------------------------------------------------------ driver events

    def on_connected(self, ev: driver.Connected) -> None:
        ctx = self.ctx
        ctx.timers.cancel("connect_timeout", "pairing_deadline")
        ctx.jid = ev.jid
        self.pairing.shown = None
        self.next_attempt = None
        if self.online_at is None:
            self.online_at = ctx.clock.now()
        # The breaker only counts a success once the session has stayed up (invariant 3: a
        # brief online between conflicts resets nothing).
        ctx.timers.schedule("stable", ctx.cfg.connection.stable_after)
        self.liveness.progress(ctx.clock.now())
        ctx.timers.schedule("liveness", self.liveness.window)
        ctx.set_state(S.ONLINE, "connected")
        self.pairing.on_linked(ev.jid)
        self.outbox.pump(self.driver)

    def on_disconnected(self, ev: driver.Disconnected) -> None:
        ctx = self.ctx
        ctx.log.info("disconnected: {} (code {})", ev.reason, ev.code)
        if ctx.state == S.ONLINE and self.was_stable():
            # A long healthy session that drops is not a failed attempt.
            self.close(ev.reason)
            ctx.last_code = ev.code
            self.backoff_attempt = 0
            now = ctx.clock.now()
            delay = max(ctx.cfg.connection.backoff_initial, self.throttle.next_allowed(now) - now)
            self.wait_then_connect(delay, S.BACKOFF, ev.reason)
        else:
            self.failed(ev.reason, ev.code)

    def on_conflict(self, ev: driver.Conflict) -> None:
        ctx = self.ctx
        now = ctx.clock.now()
        cooldown = self.conflicts.record(now)
        self.throttle.record_conflict(now)
        ctx.deps.store.add_conflict(ctx.id, ctx.clock.wall())
        ctx.last_code = 440
        self.close("stream replaced (440 conflict)")
        ctx.timers.cancel("connect")
        count = self.conflicts.count(now)
        ctx.deps.bus.publish(
            f"instance.{ctx.id}.conflict",
            {
                "time": ctx.clock.wall(),
                "instance_id": ctx.id,
                "count_in_window": count,
                "cooldown": cooldown,
                "reason": ev.reason,
            },
        )
        if self.conflicts.should_trip(now):
            self.breaker.trip(now, f"conflict storm: {count} conflicts in the window")
            ctx.set_state(S.TRIPPED, f"conflict storm: {count} conflicts", code=440)
            ctx.alarm("conflict_storm", f"{count} conflicts in the window; breaker open")
            self.schedule_probe()
            return
        # Never an immediate reconnect after a 440 (invariant 3).
        wait = max(cooldown, self.throttle.next_allowed(now) - now)
        ctx.log.warning("440 conflict ({} in the window); next attempt in {:.0f} s", count, wait)
        self.next_attempt = now + wait
        ctx.timers.schedule("connect", wait, payload=("cooldown over", False))
        ctx.set_state(S.COOLDOWN, "stream replaced (440 conflict)", code=440)

    def on_logged_out(self, ev: driver.LoggedOut) -> None:
        self.close(ev.reason)
        self.ctx.timers.cancel("connect")
        self.ctx.set_state(S.LOGGED_OUT, ev.reason, code=401)
        self.ctx.alarm("logged_out", f"device unlinked: {ev.reason}; pair again")

    def on_banned(self, ev: driver.Banned) -> None:
        ctx = self.ctx
        self.close("banned")
        ctx.timers.cancel("connect")
        now = ctx.clock.now()
        self.next_attempt = ev.until
        ctx.timers.schedule("ban_end", max(0.0, ev.until - now))
        ctx.set_state(S.BANNED, ev.reason or "temporarily banned")
        ctx.alarm("banned", f"temporary ban for {max(0.0, ev.until - now):.0f} s")

    # ------------------------------------------------------------------ timers

    def on_connect_timer(self) -> None:
        ctx = self.ctx
        self.next_attempt = None
        why, gated = ctx.timers.take_payload("connect", ("retry", False))
        # A probe that waited for its gate slot waits in `tripped`.
        if ctx.state in (S.BACKOFF, S.COOLDOWN, S.STOPPED) or (gated and ctx.state == S.TRIPPED):
            self.connect(why, gated=gated)

    def on_probe_timer(self) -> None:
        self.next_attempt = None
        if self.ctx.state == S.TRIPPED:
            self.connect("half-open probe")

    def on_ban_end(self) -> None:
        self.next_attempt = None
        if self.ctx.state == S.BANNED:
            self.ctx.set_state(S.STOPPED, "ban expired")
            self.connect("ban expired")

    def on_connect_timeout(self) -> None:
        if self.ctx.state == S.CONNECTING:
            self.failed("connection timed out")

    def on_pairing_deadline(self) -> None:
        if self.ctx.state == S.PAIRING:
            self.close("pairing timed out")
            self.ctx.set_state(S.LOGGED_OUT, "pairing timed out")
            self.pairing.fail_waiters(InvalidState("pairing timed out"))

    def on_keepalive(self, ev: driver.KeepAlive) -> None:
        """The library's keep-alive: logged and counted; a failing one is not progress, so the
        liveness check recycles a session whose pings keep failing while sends wait."""
        if ev.ok:
            self.ctx.log.info("keep-alive restored")
        else:
            self.keepalive_failures += 1
            self.ctx.log.warning("keep-alive timed out ({} in a row)", ev.errors)

    def on_liveness(self) -> None:
        """Online with sends pending and nothing heard for keepalive x 3: recycle the session.

        Close, then connect through the throttle like any attempt (never a tight reconnect);
        not a breaker failure: the session did connect, it went quiet."""
        ctx = self.ctx
        now = ctx.clock.now()
        pending = self.outbox.waits_on_network  # a full disk is no dead session
        dead, again = self.liveness.check(now, online=ctx.state == S.ONLINE, pending=pending)
        if not dead:
            if ctx.state == S.ONLINE and again > 0:
                ctx.timers.schedule("liveness", again)
            return
        window = self.liveness.window
        reason = f"no progress for {window:.0f} s with sends pending (connection.keepalive x 3)"
        ctx.log.warning("session looks dead: {}; recycling it", reason)
        self.close(f"recycled: {reason}")
        delay = max(0.0, self.throttle.next_allowed(now) - now)
        self.wait_then_connect(delay, S.BACKOFF, f"recycled: {reason}")

    def on_stable(self) -> None:
        if self.ctx.state == S.ONLINE:
            self.breaker.record_success(self.ctx.clock.now())
            self.backoff_attempt = 0
            self.ctx.publish_snapshot()


def _discard(drv: driver.Driver, log: Any) -> None:
    """A driver built but never opened: close it and give back what building it took (a
    whatsmeow host slot, `release`); drivers that took nothing have no `release`."""
    try:
        drv.disconnect()
        release = getattr(drv, "release", None)
        if release is not None:
            release()
    except Exception:  # the actor goes on refusing; a leak is logged, not raised
        log.exception("a refused driver failed to close")
