"""The logic of one WhatsApp instance: state machine, connection policy, durable queue.

A plain class: the actor (instance_actor.py) only routes messages to it. It never blocks:
the driver is non-blocking, store writes are group-committed in the background (the ones a
reply depends on are awaited by the caller through a Future), and timers come back as
messages through `post`. Tests drive it directly with a FakeClock.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from loguru import logger

from waz_actors.actors.board import InstanceSnapshot, StatusBoard
from waz_actors.actors.gate import ConnectGate
from waz_actors.actors.messages import Boot, Command, FromDriver, Submit, TimerFired
from waz_actors.clock import Scheduler, TimerHandle
from waz_actors.config import Config
from waz_actors.drivers import base as d
from waz_actors.errors import Internal, InvalidState, WazError
from waz_actors.events import EventBus
from waz_actors.policy.backoff import compute_backoff
from waz_actors.policy.breaker import BreakerState, CircuitBreaker
from waz_actors.policy.conflicts import ConflictHistory
from waz_actors.policy.health import HealthThresholds, SuccessWindow
from waz_actors.policy.pacing import Pacer
from waz_actors.policy.retry import retry_delay, should_retry
from waz_actors.policy.throttle import ConnectThrottle
from waz_actors.store import Store
from waz_actors.store.records import InstanceRecord, MessageRecord
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M

# Commands an operator may send while the instance is in a state that has no session.
_NO_SESSION = {S.STOPPED, S.BACKOFF, S.COOLDOWN, S.TRIPPED, S.LOGGED_OUT, S.BANNED}


@dataclass(frozen=True)
class InstanceDeps:
    cfg: Config
    clock: Any  # RealClock | FakeClock
    scheduler: Scheduler
    store: Store
    bus: EventBus
    board: StatusBoard
    gate: ConnectGate
    drivers: dict[str, d.DriverFactory]


@dataclass
class _Queued:
    record: MessageRecord
    not_before: float = 0.0  # daemon time before which a retry must not go


class Instance:
    def __init__(
        self,
        deps: InstanceDeps,
        record: InstanceRecord,
        post: Callable[[object], None],
        *,
        restart_tripped: str | None = None,
        conflicts: list[float] | None = None,
    ) -> None:
        self.d = deps
        self.cfg = deps.cfg
        self.clock = deps.clock
        self.id = record.instance_id
        self.record = record
        self.post = post
        self.log = logger.bind(instance=self.id)
        c = self.cfg
        self.breaker = CircuitBreaker.from_config(c.breaker)
        self.throttle = ConnectThrottle.from_config(c.connection)
        self.conflicts = ConflictHistory.from_config(c.conflict, self._restore_conflicts(conflicts))
        self.pacer = Pacer.from_config(c.queue)
        self.success = SuccessWindow()
        self.thresholds = HealthThresholds.from_config(c.health)
        self.state: S = S.STOPPED
        self.since = self.clock.wall()
        self.desired = record.desired
        self.jid = record.jid
        self.last_code: int | None = record.last_code
        self.last_reason: str | None = record.last_reason
        self.driver: d.Driver | None = None
        self.generation = 0
        self.online_at: float | None = None
        self.online_total = 0.0
        self.connect_attempts = 0
        self.backoff_attempt = 0
        self.next_attempt: float | None = None
        self.queue: deque[_Queued] = deque()
        self.queued_ids: set[str] = set()
        self.in_flight: _Queued | None = None
        self.in_flight_at = 0.0  # daemon time the send in flight started
        self.sent = 0
        self.failed = 0
        self.pairing: dict[str, Any] | None = None
        self.pair_waiters: list[Future[Any]] = []
        self.pair_phone: str | None = None
        self.draining: Future[int] | None = None
        self._timers: dict[str, tuple[TimerHandle, int]] = {}
        self._payloads: dict[str, tuple[str, bool]] = {}
        self._token = 0
        self._restart_tripped = restart_tripped
        self._policy_parts: tuple[Any, ...] | None = None  # see snapshot()
        self._light_due = False
        self.booted = False

    # ------------------------------------------------------------------ lifecycle

    def boot(self) -> None:
        """Load the durable queue and take up the wanted state (no connection if stopped)."""
        self.booted = True
        # The writer updates the pending counter before it resolves a commit's future, so a
        # message committed before this read is counted here or told to us afterwards.
        if self.d.store.pending_count(self.id):
            for rec in self.d.store.pending_messages(self.id):
                self._enqueue_local(rec)
        if self._restart_tripped:
            self.breaker.trip(self.clock.now(), self._restart_tripped)
            self._set_state(S.TRIPPED, self._restart_tripped)
            self._schedule_probe()
            return
        if self.record.state == S.LOGGED_OUT:
            self._set_state(S.LOGGED_OUT, self.record.last_reason or "logged out")
        elif self.desired == "running":
            self._connect("start")
        else:
            self._publish_snapshot()

    def shutdown(self) -> None:
        """Actor stopping: close the session; whatever was in flight stays durable."""
        self._close_driver("daemon stopping")
        for name in list(self._timers):
            self._cancel_timer(name)
        for w in self.pair_waiters:
            if not w.done():
                w.set_exception(InvalidState("instance is stopping"))
        self.pair_waiters.clear()

    # ------------------------------------------------------------------ routing

    def handle(self, msg: object) -> Any:
        result = self._handle(msg)
        self._flush_light()
        return result

    def _flush_light(self) -> None:
        # One light snapshot per message handled, however many steps asked for one.
        if self._light_due:
            self._light_due = False
            self.d.board.put(self.snapshot(light=True))

    def _handle(self, msg: object) -> Any:
        if not self.booted:
            # The queue is read only now, after the spawner registered this actor: a message
            # committed before that is in the store, one committed after is told to us.
            self.boot()
        if isinstance(msg, Boot):
            return None
        if isinstance(msg, FromDriver):
            if msg.generation == self.generation and self.driver is not None:
                self._on_driver(msg.event)
            return None
        if isinstance(msg, TimerFired):
            current = self._timers.get(msg.name)
            if current is not None and current[1] == msg.token:
                del self._timers[msg.name]
                self._on_timer(msg.name)
            return None
        if isinstance(msg, Submit):
            self._enqueue_local(msg.record)
            self._pump()
            self._publish_snapshot(light=True)
            return None
        if isinstance(msg, Command):
            return self._on_command(msg)
        raise TypeError(f"unexpected message {msg!r}")

    def _on_command(self, cmd: Command) -> Any:
        handler = getattr(self, f"cmd_{cmd.name}", None)
        if handler is None:
            raise TypeError(f"unknown instance command {cmd.name!r}")
        try:
            result = handler(**cmd.args)
        except WazError as e:
            if cmd.reply is not None:
                cmd.reply.set_exception(e)
                return None
            raise
        except Exception as e:
            # A bug: answer the waiting client, then let the actor fail so it is replaced.
            if cmd.reply is not None and not cmd.reply.done():
                cmd.reply.set_exception(Internal(f"instance {self.id} failed: {e}"))
            raise
        if cmd.reply is not None and result is not _LATER:
            cmd.reply.set_result(result)
        elif cmd.reply is not None and cmd.name == "pair":
            self.pair_waiters.append(cmd.reply)
        elif cmd.reply is not None and cmd.name == "drain":
            self.draining = cmd.reply
        return None

    # ------------------------------------------------------------------ commands

    def cmd_start(self) -> str:
        self._want("running")
        if self.state == S.STOPPED:
            self._connect("start")
        return str(self.state)

    def cmd_stop(self) -> str:
        self._want("stopped")
        self._close_driver("stopped by operator")
        for name in ("connect", "connect_timeout", "probe", "ban_end", "pairing_deadline"):
            self._cancel_timer(name)
        self._set_state(S.STOPPED, "stopped by operator")
        return str(self.state)

    def cmd_restart(self) -> str:
        self.cmd_stop()
        return self.cmd_start()

    def cmd_reset(self) -> str:
        """Operator override: close the breaker and forget the cooldown, then connect."""
        self.breaker.reset()
        self.throttle = ConnectThrottle.from_config(self.cfg.connection)
        self.backoff_attempt = 0
        self._cancel_timer("probe")
        if self.state in (S.TRIPPED, S.COOLDOWN, S.BACKOFF):
            self._cancel_timer("connect")
            self._set_state(S.STOPPED, "reset by operator")
        if self.desired == "running" and self.state == S.STOPPED:
            self._connect("reset")
        return str(self.state)

    def cmd_logout(self) -> str:
        if self.driver is not None:
            self.driver.logout()
        self._close_driver("logged out by operator")
        self._cancel_timer("connect")
        self._set_state(S.LOGGED_OUT, "logged out by operator")
        return str(self.state)

    def cmd_pair(self, phone: str | None = None) -> Any:
        if self.state == S.ONLINE:
            raise InvalidState(f"instance {self.id} is online; log out before pairing again")
        if self.state == S.BANNED:
            raise InvalidState(f"instance {self.id} is banned until the ban expires")
        self.pair_phone = phone
        self._want("running")
        if self.state == S.PAIRING and self.pairing:
            if phone and self.driver is not None:
                self.driver.request_pair_code(phone)
                return _LATER
            return dict(self.pairing)
        if self.state == S.CONNECTING:
            if phone and self.driver is not None:
                self.driver.request_pair_code(phone)
            return _LATER
        # Pairing is an operator action: it skips the breaker (the phone is in their hand) but
        # never the one-session rule; the throttle still spaces attempts.
        self.breaker.reset()
        self._cancel_timer("connect")
        self._cancel_timer("probe")
        self._close_driver("pairing")
        self.pair_phone = phone  # closing forgot it
        self._set_state(S.STOPPED, "pairing requested")
        self._connect("pair", force_now=True)
        return _LATER

    def cmd_cancel(self, message_id: str) -> str:
        if self.in_flight is not None and self.in_flight.record.message_id == message_id:
            raise InvalidState(f"message {message_id} is being sent and cannot be cancelled")
        if message_id in self.queued_ids:
            self._drop_local(message_id)
        ok = self.d.store.update_message(
            message_id, M.CANCELLED, reason="cancelled by client", only_if={M.QUEUED}
        ).result()
        if not ok:
            rec = self.d.store.get_message(message_id)
            status = rec.status if rec else "unknown"
            raise InvalidState(f"message {message_id} is {status} and cannot be cancelled")
        self._emit_message(message_id, M.CANCELLED, "cancelled by client")
        self._publish_snapshot()
        return str(M.CANCELLED)

    def cmd_purge(self, status: str = "queued") -> int:
        ids = self.d.store.cancel_pending(self.id, status=status, reason="purged by operator")
        for mid in ids:
            self._drop_local(mid)
            self._emit_message(mid, M.CANCELLED, "purged by operator")
        self._publish_snapshot()
        return len(ids)

    def cmd_retry(self, message_ids: list[str] | None = None) -> list[str]:
        ids = self.d.store.requeue_failed(self.id, message_ids, max_queue=self.cfg.queue.max_size)
        for mid in ids:
            rec = self.d.store.get_message(mid)
            if rec is not None:
                self._enqueue_local(rec)
                self._emit_message(mid, M.QUEUED, "retried by operator")
        self._pump()
        self._publish_snapshot()
        return ids

    def cmd_drain(self) -> Any:
        """Shutdown: send nothing new; settle what is in flight, then disconnect."""
        self._cancel_timer("pump")
        self._cancel_timer("connect")
        if self.in_flight is None:
            done: Future[int] = Future()
            done.set_result(1)
            self.draining = done  # and no timer may connect again
            self._close_driver("daemon stopping")
            return 1
        return _LATER

    def cmd_ping(self) -> str:
        return str(self.state)

    def cmd_crash(self) -> None:
        """Test hook (admin only through sim): raise inside the actor to exercise supervision."""
        raise RuntimeError(f"crash requested for {self.id}")

    # ------------------------------------------------------------------ connection

    def _want(self, desired: str) -> None:
        if self.desired != desired:
            self.desired = desired
            self.d.store.set_desired(self.id, desired)

    def _connect(self, why: str, *, force_now: bool = False, gated: bool = False) -> None:
        """Open a session if every policy allows it now; otherwise schedule the attempt."""
        if self.driver is not None or self.desired != "running" or self.draining is not None:
            return
        now = self.clock.now()
        # `gated`: every policy said yes when the gate slot was reserved (the breaker may even
        # have handed out its one probe then); asking again would refuse our own probe.
        if not self.throttle.allowed(now) and not (force_now or gated):
            self._wait_then_connect(self.throttle.next_allowed(now) - now, S.BACKOFF, why)
            return
        if not (force_now or gated) and not self.breaker.allow(now):
            self._set_state(S.TRIPPED, self.breaker.last_reason or "circuit breaker open")
            self._schedule_probe()
            return
        delay = 0.0 if gated else self.d.gate.reserve(now)
        if delay > 0:
            # Staggered start: the slot is reserved, so the timer connects without asking again.
            state = self.state if self.state != S.STOPPED else S.BACKOFF
            self._wait_then_connect(delay, state, f"staggered: {why}", gated=True)
            return
        self.throttle.record_attempt(now)
        self.connect_attempts += 1
        self.generation += 1
        gen = self.generation
        ctx = d.DriverContext(
            instance_id=self.id,
            settings=self.record.settings,
            state_dir=str(self.cfg.state_dir),
            sink=lambda ev, gen=gen: self.post(FromDriver(gen, ev)),
        )
        try:
            self.driver = self.d.drivers[self.record.driver](ctx)
            self._set_state(S.CONNECTING, why)
            self._schedule("connect_timeout", self.cfg.connection.timeout)
            self.driver.connect()
            if self.pair_phone:
                self.driver.request_pair_code(self.pair_phone)
        except Exception as e:
            # A broken driver is a failed attempt (backoff, then the breaker), not a crash loop.
            self.log.exception("driver {} failed to connect", self.record.driver)
            self._alarm("driver_error", f"driver {self.record.driver} failed: {e}")
            self._connection_failed(f"driver error: {e}")

    def _wait_then_connect(
        self, delay: float, state: S, reason: str, *, gated: bool = False
    ) -> None:
        self.next_attempt = self.clock.now() + max(0.0, delay)
        self._schedule("connect", max(0.0, delay), payload=(reason, gated))
        if state != self.state or reason != self.last_reason:
            self._set_state(state, reason)
        else:
            self._publish_snapshot()

    def _schedule_probe(self) -> None:
        at = self.breaker.next_probe_at()
        if at is not None:
            self.next_attempt = at
            self._schedule("probe", max(0.0, at - self.clock.now()))
            self._publish_snapshot()

    def _close_driver(self, reason: str) -> None:
        """Close the session fully before anything else may open one (invariant 1)."""
        self._cancel_timer("connect_timeout")
        self._cancel_timer("pairing_deadline")
        self._cancel_timer("stable")
        self._cancel_timer("processing")
        if self.online_at is not None:
            self.online_total += self.clock.now() - self.online_at
            self.online_at = None
        drv, self.driver = self.driver, None
        self.generation += 1  # anything the old session still had in our mailbox is stale
        if drv is not None:
            try:
                drv.disconnect()
            except Exception:
                self.log.exception("driver disconnect failed")
        if self.in_flight is not None:
            # Outcome unknown: back to the head of the queue, same id, no retry consumed.
            q = self.in_flight
            self.in_flight = None
            self.queue.appendleft(q)
            self.queued_ids.add(q.record.message_id)
            self.d.store.set_status(
                q.record.message_id,
                M.QUEUED,
                reason=f"session closed: {reason}",
                only_if={M.SENDING},
            )
            self._emit_message(q.record.message_id, M.QUEUED, f"session closed: {reason}")
        if self.pairing is not None:
            self.pairing = None
        self.pair_phone = None

    def _connection_failed(self, reason: str, code: int | None = None) -> None:
        """A failed attempt, or a session that dropped before it was stable."""
        now = self.clock.now()
        self.last_code = code
        tripped = self.breaker.record_failure(now, reason)
        self._close_driver(reason)
        if tripped or self.breaker.state != BreakerState.CLOSED:
            self._set_state(S.TRIPPED, f"circuit breaker open: {reason}", code=code)
            self._alarm("breaker_open", f"circuit breaker tripped: {reason}")
            self._schedule_probe()
            return
        self.backoff_attempt += 1
        c = self.cfg.connection
        delay = compute_backoff(
            self.backoff_attempt,
            initial=c.backoff_initial,
            multiplier=c.backoff_multiplier,
            maximum=c.backoff_max,
            jitter=c.backoff_jitter,
        )
        delay = max(delay, self.throttle.next_allowed(now) - now)
        self._wait_then_connect(delay, S.BACKOFF, reason)

    # ------------------------------------------------------------------ driver events

    def _on_driver(self, ev: d.DriverEvent) -> None:
        if isinstance(ev, d.SendResult):
            self._on_send_result(ev)
        elif isinstance(ev, d.Connected):
            self._on_connected(ev)
        elif isinstance(ev, d.Disconnected):
            self.log.info("disconnected: {} (code {})", ev.reason, ev.code)
            if self.state == S.ONLINE and self._was_stable():
                # A long healthy session that drops is not a failed attempt.
                self._close_driver(ev.reason)
                self.last_code = ev.code
                self.backoff_attempt = 0
                now = self.clock.now()
                delay = max(
                    self.cfg.connection.backoff_initial, self.throttle.next_allowed(now) - now
                )
                self._wait_then_connect(delay, S.BACKOFF, ev.reason)
            else:
                self._connection_failed(ev.reason, ev.code)
        elif isinstance(ev, d.Conflict):
            self._on_conflict(ev)
        elif isinstance(ev, d.LoggedOut):
            self._close_driver(ev.reason)
            self._cancel_timer("connect")
            self._set_state(S.LOGGED_OUT, ev.reason, code=401)
            self._alarm("logged_out", f"device unlinked: {ev.reason}; pair again")
        elif isinstance(ev, d.Banned):
            self._close_driver("banned")
            self._cancel_timer("connect")
            now = self.clock.now()
            self.next_attempt = ev.until
            self._schedule("ban_end", max(0.0, ev.until - now))
            self._set_state(S.BANNED, ev.reason or "temporarily banned")
            self._alarm("banned", f"temporary ban for {max(0.0, ev.until - now):.0f} s")
        elif isinstance(ev, d.QrCode):
            expires_at = self.clock.wall() + ev.expires_in * self.cfg.daemon.time_scale
            self.pairing = {"qr": ev.code, "expires_at": expires_at}
            if self.state != S.PAIRING:
                self._cancel_timer("connect_timeout")
                self._schedule("pairing_deadline", self.cfg.connection.pairing_timeout)
                self._set_state(S.PAIRING, "waiting for the phone to scan the QR code")
            self.d.bus.publish(
                f"instance.{self.id}.qr",
                {"time": self.clock.wall(), "instance_id": self.id, **self.pairing},
            )
            if not self.pair_phone:  # a pair request with a phone waits for its code
                self._answer_pair(dict(self.pairing))
        elif isinstance(ev, d.PairCode):
            self.pairing = {"code": ev.code}
            if self.state != S.PAIRING:
                self._cancel_timer("connect_timeout")
                self._schedule("pairing_deadline", self.cfg.connection.pairing_timeout)
                self._set_state(S.PAIRING, "waiting for the pairing code on the phone")
            self.d.bus.publish(
                f"instance.{self.id}.qr",
                {"time": self.clock.wall(), "instance_id": self.id, "code": ev.code},
            )
            self._answer_pair({"code": ev.code})
        elif isinstance(ev, d.Paired):
            self.jid = ev.jid
            self._cancel_timer("pairing_deadline")
            self.log.info("paired as {}", ev.jid)
        elif isinstance(ev, d.Receipt):
            self.d.bus.publish(
                f"message.{self.id}.receipt",
                {
                    "time": self.clock.wall(),
                    "instance_id": self.id,
                    "message_id": ev.message_id,
                    "kind": ev.kind,
                },
            )
        elif isinstance(ev, d.DriverAlarm):
            self._alarm(ev.kind, ev.message)

    def _was_stable(self) -> bool:
        return (
            self.online_at is not None
            and self.clock.now() - self.online_at >= self.cfg.connection.stable_after
        )

    def _on_connected(self, ev: d.Connected) -> None:
        self._cancel_timer("connect_timeout")
        self._cancel_timer("pairing_deadline")
        self.jid = ev.jid
        self.pairing = None
        self.next_attempt = None
        if self.online_at is None:
            self.online_at = self.clock.now()
        # The breaker only counts a success once the session has stayed up (invariant 3: a
        # brief online between conflicts resets nothing).
        self._schedule("stable", self.cfg.connection.stable_after)
        self._set_state(S.ONLINE, "connected")
        # A pair request whose connection came up linked (no QR, no code: the stored session
        # was still valid) is answered now, as pairing an online instance is, not by a timeout.
        for w in self.pair_waiters:
            if not w.done():
                w.set_exception(
                    InvalidState(
                        f"instance {self.id} is already linked (online as {ev.jid}); "
                        "log out before pairing again"
                    )
                )
        self.pair_waiters.clear()
        self.pair_phone = None
        self._pump()

    def _on_conflict(self, ev: d.Conflict) -> None:
        now = self.clock.now()
        cooldown = self.conflicts.record(now)
        self.throttle.record_conflict(now)
        self.d.store.add_conflict(self.id, self.clock.wall())
        self.last_code = 440
        self._close_driver("stream replaced (440 conflict)")
        self._cancel_timer("connect")
        count = self.conflicts.count(now)
        self.d.bus.publish(
            f"instance.{self.id}.conflict",
            {
                "time": self.clock.wall(),
                "instance_id": self.id,
                "count_in_window": count,
                "cooldown": cooldown,
                "reason": ev.reason,
            },
        )
        if self.conflicts.should_trip(now):
            self.breaker.trip(now, f"conflict storm: {count} conflicts in the window")
            self._set_state(S.TRIPPED, f"conflict storm: {count} conflicts", code=440)
            self._alarm("conflict_storm", f"{count} conflicts in the window; breaker open")
            self._schedule_probe()
            return
        # Never an immediate reconnect after a 440 (invariant 3).
        wait = max(cooldown, self.throttle.next_allowed(now) - now)
        self.log.warning("440 conflict ({} in the window); next attempt in {:.0f} s", count, wait)
        self.next_attempt = now + wait
        self._schedule("connect", wait, payload=("cooldown over", False))
        self._set_state(S.COOLDOWN, "stream replaced (440 conflict)", code=440)

    # ------------------------------------------------------------------ timers

    def _on_timer(self, name: str) -> None:
        if name == "connect":
            self.next_attempt = None
            why, gated = self._payloads.pop(name, ("retry", False))
            # A probe that waited for its gate slot waits in `tripped`.
            if self.state in (S.BACKOFF, S.COOLDOWN, S.STOPPED) or (
                gated and self.state == S.TRIPPED
            ):
                self._connect(why, gated=gated)
        elif name == "probe":
            self.next_attempt = None
            if self.state == S.TRIPPED:
                self._connect("half-open probe")
        elif name == "ban_end":
            self.next_attempt = None
            if self.state == S.BANNED:
                self._set_state(S.STOPPED, "ban expired")
                self._connect("ban expired")
        elif name == "connect_timeout":
            if self.state == S.CONNECTING:
                self._connection_failed("connection timed out")
        elif name == "pairing_deadline":
            if self.state == S.PAIRING:
                self._close_driver("pairing timed out")
                self._set_state(S.LOGGED_OUT, "pairing timed out")
                for w in self.pair_waiters:
                    if not w.done():
                        w.set_exception(InvalidState("pairing timed out"))
                self.pair_waiters.clear()
        elif name == "stable":
            if self.state == S.ONLINE:
                self.breaker.record_success(self.clock.now())
                self.backoff_attempt = 0
                self._publish_snapshot()
        elif name == "processing":
            # One timer rides along many sends (rescheduling it per send made every send take
            # the scheduler's lock): it checks the send in flight now, whichever that is.
            if self.in_flight is not None:
                left = self.in_flight_at + self.cfg.queue.processing_timeout - self.clock.now()
                if left > 0:
                    self._schedule("processing", left)
                    return
                # Outcome unknown: resend later with the same id; the link is evidently stuck,
                # so recycle the session through the normal backoff.
                self.log.warning("send of {} timed out", self.in_flight.record.message_id)
                self._connection_failed("send timed out")
        elif name == "pump":
            self._pump()

    def _schedule(self, name: str, delay: float, payload: tuple[str, bool] | None = None) -> None:
        self._cancel_timer(name)
        self._token += 1
        token = self._token
        if payload is not None:
            self._payloads[name] = payload
        handle = self.d.scheduler.call_later(delay, lambda: self.post(TimerFired(name, token)))
        self._timers[name] = (handle, token)

    def _cancel_timer(self, name: str) -> None:
        t = self._timers.pop(name, None)
        if t is not None:
            t[0].cancel()

    # ------------------------------------------------------------------ queue

    def _enqueue_local(self, rec: MessageRecord) -> None:
        if rec.message_id in self.queued_ids:
            return
        if self.in_flight is not None and self.in_flight.record.message_id == rec.message_id:
            return
        self.queue.append(_Queued(rec))
        self.queued_ids.add(rec.message_id)

    def _drop_local(self, message_id: str) -> None:
        self.queued_ids.discard(message_id)
        self.queue = deque(q for q in self.queue if q.record.message_id != message_id)

    def _pump(self) -> None:
        """Send the next message if online, idle and the pacer allows it."""
        if (
            self.state != S.ONLINE
            or self.in_flight is not None
            or self.driver is None
            or self.draining is not None
            or not self.queue
        ):
            return
        now = self.clock.now()
        wall = self.clock.wall()
        # Expired messages leave the queue as expired, whatever their position.
        while self.queue and self._expired(self.queue[0].record, wall):
            q = self.queue.popleft()
            self.queued_ids.discard(q.record.message_id)
            self._finish(q.record, M.EXPIRED, "ttl expired")
        ready = next((q for q in self.queue if q.not_before <= now), None)
        if ready is None:
            if self.queue:
                self._schedule("pump", min(q.not_before for q in self.queue) - now)
            self._publish_snapshot(light=True)
            return
        wait = self.pacer.delay(now)
        if wait > 0:
            if "pump" not in self._timers:
                self._schedule("pump", wait)
            return
        self.pacer.take(now)
        self.queue.remove(ready)
        self.queued_ids.discard(ready.record.message_id)
        self.in_flight = ready
        self.in_flight_at = now
        rec = ready.record
        self.d.store.set_status(rec.message_id, M.SENDING, reason="sending")
        self._emit_message(rec.message_id, M.SENDING, "sending")
        if "processing" not in self._timers:
            self._schedule("processing", self.cfg.queue.processing_timeout)
        self.driver.send(
            d.OutgoingMessage(message_id=rec.message_id, to=rec.to, text=rec.text, media=rec.media)
        )
        self._publish_snapshot(light=True)

    @staticmethod
    def _expired(rec: MessageRecord, wall: float) -> bool:
        return rec.expires_at is not None and rec.expires_at <= wall

    def _on_send_result(self, ev: d.SendResult) -> None:
        q = self.in_flight
        if q is None or q.record.message_id != ev.message_id:
            self.log.debug("late send result for {}", ev.message_id)
            return
        self.in_flight = None
        now = self.clock.now()
        rec = q.record
        attempts = rec.attempts + 1
        if ev.ok:
            self.sent += 1
            self.success.record(now, True)
            self.d.store.set_status(
                rec.message_id, M.SENT, attempts=attempts, wa_id=ev.wa_id, reason="sent"
            )
            self._emit_message(rec.message_id, M.SENT, "sent", attempts=attempts, wa_id=ev.wa_id)
        elif should_retry(attempts, max_retries=self.cfg.queue.max_retries, permanent=ev.permanent):
            self.success.record(now, False)
            delay = retry_delay(
                attempts,
                initial=self.cfg.queue.retry_delay,
                multiplier=self.cfg.queue.retry_multiplier,
            )
            rec = dataclasses.replace(rec, attempts=attempts, last_error=ev.error)
            self.queue.appendleft(_Queued(rec, not_before=now + delay))
            self.queued_ids.add(rec.message_id)
            reason = f"send failed, retry in {delay:.0f} s: {ev.error}"
            self.d.store.set_status(
                rec.message_id, M.QUEUED, attempts=attempts, error=ev.error, reason=reason
            )
            self._emit_message(rec.message_id, M.QUEUED, reason, attempts=attempts)
        else:
            self.success.record(now, False)
            why = "permanent error" if ev.permanent else "retries exhausted"
            rec = dataclasses.replace(rec, attempts=attempts, last_error=ev.error)
            self._finish(rec, M.FAILED, f"{why}: {ev.error}")
        if self.draining is not None:
            self._close_driver("daemon stopping")
            if not self.draining.done():
                self.draining.set_result(1)
        self._pump()
        self._publish_snapshot(light=True)

    def _finish(self, rec: MessageRecord, status: M, reason: str) -> None:
        if status == M.FAILED:
            self.failed += 1
        self.d.store.set_status(
            rec.message_id, status, attempts=rec.attempts, error=rec.last_error, reason=reason
        )
        self._emit_message(rec.message_id, status, reason, attempts=rec.attempts)

    # ------------------------------------------------------------------ publishing

    def _answer_pair(self, result: dict[str, Any]) -> None:
        for w in self.pair_waiters:
            if not w.done():
                w.set_result(result)
        self.pair_waiters.clear()

    def _set_state(self, state: S, reason: str, *, code: int | None = None) -> None:
        previous = self.state
        self.state = state
        self.since = self.clock.wall()
        self.last_reason = reason
        if code is not None:
            self.last_code = code
        if state != previous:
            log = (
                self.log.warning if state in (S.TRIPPED, S.BANNED, S.LOGGED_OUT) else self.log.info
            )
            log("{} -> {}: {}", previous, state, reason)
        self.d.store.save_state(
            self.id, str(state), since=self.since, reason=reason, code=self.last_code, jid=self.jid
        )
        body = {
            "time": self.since,
            "instance_id": self.id,
            "state": str(state),
            "previous": str(previous),
            "reason": reason,
            "code": self.last_code,
        }
        self.d.store.log_event(f"instance.{self.id}.state", body)
        self.d.bus.publish(f"instance.{self.id}.state", body)
        self._publish_snapshot()

    def _emit_message(
        self,
        message_id: str,
        status: M,
        reason: str,
        *,
        attempts: int | None = None,
        wa_id: str | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "time": self.clock.wall(),
            "instance_id": self.id,
            "message_id": message_id,
            "status": str(status),
            "reason": reason,
        }
        if attempts is not None:
            body["attempts"] = attempts
        if wa_id is not None:
            body["wa_id"] = wa_id
        self.d.bus.publish(f"message.{self.id}.status", body)

    def _alarm(self, kind: str, message: str) -> None:
        body = {"time": self.clock.wall(), "kind": kind, "instance_id": self.id, "message": message}
        self.d.store.log_event("daemon.alarm", body)
        self.d.bus.publish("daemon.alarm", body)

    def snapshot(self, light: bool = False) -> InstanceSnapshot:
        """`light`: reuse the connection policies' part if it is under a daemon second old.

        Sends publish a snapshot at each step (queue depth, counters), and rebuilding the
        breaker, conflict and throttle views each time was most of an instance's CPU per
        message. Every change to those policies publishes a full snapshot, so a light one is
        behind only in what time alone moves (a sliding window), by under a second."""
        now = self.clock.now()
        rate = self.success.rate(now)
        depth = len(self.queue)
        online = self.online_total + (now - self.online_at if self.online_at is not None else 0.0)
        parts = self._policy_parts
        if not light or parts is None or now - parts[0] >= 1.0:
            parts = (now, *self._policy_views(now))
            self._policy_parts = parts
        _, breaker, conflicts, throttle, next_at = parts
        return InstanceSnapshot(
            instance_id=self.id,
            tenant=self.record.tenant,
            driver=self.record.driver,
            state=str(self.state),
            since=self.since,
            desired=self.desired,
            jid=self.jid,
            last_code=self.last_code,
            last_reason=self.last_reason,
            breaker=breaker,
            conflicts=conflicts,
            throttle=throttle,
            next_attempt_at=next_at,
            queue_depth=depth,
            in_flight=1 if self.in_flight is not None else 0,
            sent=self.sent,
            failed=self.failed,
            success_rate=rate,
            health=str(self.thresholds.assess(rate, depth)),
            pairing=dict(self.pairing) if self.pairing else None,
            connect_attempts=self.connect_attempts,
            online_seconds=online,
        )

    def _policy_views(
        self, now: float
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], float | None]:
        next_at = None if self.next_attempt is None else self._wall_of(self.next_attempt)
        return (
            self._walls(self.breaker.snapshot(now), ("opened_at", "next_probe_at")),
            {
                **self._walls(self.conflicts.snapshot(now), ("last",)),
                "times": [
                    self._wall_of(t)
                    for t in self.conflicts.times()
                    if now - t <= self.cfg.conflict.window
                ],
            },
            self._walls(
                self.throttle.snapshot(now), ("last_attempt", "last_conflict", "next_allowed")
            ),
            next_at,
        )

    def _wall_of(self, t: float) -> float:
        """A daemon-clock time as Unix time, which is what clients are shown."""
        return self.clock.wall() + (t - self.clock.now()) * self.cfg.daemon.time_scale

    def _walls(self, snap: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        for k in keys:
            if snap.get(k) is not None:
                snap[k] = self._wall_of(snap[k])
        return snap

    def _publish_snapshot(self, light: bool = False) -> None:
        """A full snapshot now; a light one (queue and counters) once the message is handled."""
        if light:
            self._light_due = True
            return
        self._light_due = False
        self.d.board.put(self.snapshot())

    # ------------------------------------------------------------------ helpers

    def _restore_conflicts(self, known: list[float] | None) -> list[float]:
        """Conflicts survive restarts: convert stored wall times to this clock's daemon time.

        `known`: the wall times already read for the whole fleet at start-up (one query for
        thousands of instances); None reads this instance's own."""
        wall = self.clock.wall()
        scale = self.cfg.daemon.time_scale
        since = wall - self.cfg.conflict.window * scale
        now = self.clock.now()
        walls = self.d.store.conflicts_since(self.id, since) if known is None else known
        return [now - (wall - t) / scale for t in walls if t >= since]


_LATER = object()  # a command whose answer comes with a later event
