"""The logic of one WhatsApp instance: the coordinator that routes each message to its part.

A plain class: the actor (instance_actor.py) only routes messages to it. It never blocks:
the driver is non-blocking, store writes are group-committed in the background (the ones a
reply depends on are awaited by the caller through a Future; a send waits for its `sending`
write, whose commit comes back as a `Written` message), and timers come back as messages
through `post`. Tests drive it directly with a FakeClock.

The parts, each with its own state, share a Context (identity, services, timers, the visible
state): Connection (the session's life cycle), Outbox (the queue and sends), Pairing (codes
shown, requests waiting) and Snapshots (what the status board shows).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from waz_actors.actors.board import InstanceSnapshot
from waz_actors.actors.instance.connection import Connection
from waz_actors.actors.instance.context import Context
from waz_actors.actors.instance.deps import InstanceDeps
from waz_actors.actors.instance.inbound import Inbound
from waz_actors.actors.instance.outbox import Outbox
from waz_actors.actors.instance.pairing import Pairing
from waz_actors.actors.instance.snapshot import Snapshots
from waz_actors.actors.messages import (
    Boot,
    Cancel,
    Crash,
    DeleteSession,
    Drain,
    FromDriver,
    GetState,
    InstanceCommand,
    Logout,
    Pair,
    Purge,
    Query,
    Reload,
    Reset,
    Restart,
    Retry,
    Start,
    Stop,
    Submit,
    TimerFired,
    Written,
)
from waz_actors.drivers import base as driver
from waz_actors.errors import Internal, InvalidState, WazError
from waz_actors.store.records import InstanceRecord
from waz_actors.types import InstanceState as S

_LATER = object()  # a command whose answer comes with a later event


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
        self.deps = deps
        self.id = record.instance_id
        self.ctx = Context(deps, record, post, snapshot=self.snapshot)
        self.outbox = Outbox(self.ctx)
        self.pairing = Pairing(self.ctx)
        self.connection = Connection(self.ctx, self.outbox, self.pairing, conflicts)
        self.inbound = Inbound(self.ctx, self.connection)
        self._snapshots = Snapshots(self.ctx, self.connection, self.outbox, self.pairing)
        self._restart_tripped = restart_tripped
        self.booted = False
        conn = self.connection
        self._on_timer: dict[str, Callable[[], None]] = {
            "connect": conn.on_connect_timer,
            "probe": conn.on_probe_timer,
            "ban_end": conn.on_ban_end,
            "connect_timeout": conn.on_connect_timeout,
            "pairing_deadline": conn.on_pairing_deadline,
            "stable": conn.on_stable,
            "liveness": conn.on_liveness,
            "processing": self._on_processing,
            "pump": self._pump,
            "store_retry": self._on_store_retry,
        }

    @property
    def state(self) -> S:
        return self.ctx.state

    def snapshot(self, light: bool = False) -> InstanceSnapshot:
        return self._snapshots.build(light)

    # ------------------------------------------------------------------ lifecycle

    def boot(self) -> None:
        """Load the durable queue and take up the wanted state (no connection if stopped)."""
        self.booted = True
        self.outbox.load()
        ctx, conn = self.ctx, self.connection
        if self._restart_tripped:
            conn.breaker.trip(ctx.clock.now(), self._restart_tripped)
            ctx.set_state(S.TRIPPED, self._restart_tripped)
            conn.schedule_probe()
            return
        if ctx.record.state == S.LOGGED_OUT:
            ctx.set_state(S.LOGGED_OUT, ctx.record.last_reason or "logged out")
        elif ctx.desired == "running":
            conn.connect("start")
        else:
            ctx.publish_snapshot()

    def shutdown(self) -> None:
        """Actor stopping: close the session; whatever was in flight stays durable."""
        self.connection.close("daemon stopping")
        self.ctx.deps.sessions.forget(self.connection.switch)
        self.ctx.timers.cancel_all()
        self.pairing.fail_waiters(InvalidState("instance is stopping"))
        self.inbound.fail_all(InvalidState("instance is stopping"))

    # ------------------------------------------------------------------ routing

    def handle(self, msg: object) -> None:
        self._handle(msg)
        if self.inbound.pending and self.state != S.ONLINE:
            # the session that was asked is gone: its answers will never come
            self.inbound.fail_all(InvalidState(f"instance {self.id} is {self.state}"))
        self.ctx.flush_light()

    def _handle(self, msg: object) -> None:
        if not self.booted:
            # The queue is read only now, after the spawner registered this actor: a message
            # committed before that is in the store, one committed after is told to us.
            self.boot()
        match msg:
            case Boot():
                pass
            case FromDriver(generation=generation, event=event):
                conn = self.connection
                if generation == conn.generation and conn.driver is not None:
                    self._on_driver(event)
            case TimerFired():
                if self.ctx.timers.fired(msg):
                    self._on_timer[msg.name]()
            case DeleteSession():
                self.connection.close("instance deleted", delete_session=True)
            case Submit(record=record):
                self.outbox.add(record)
                self._pump()
                self.ctx.publish_snapshot(light=True)
            case Reload(message_id=message_id):
                self.outbox.reload(message_id)
                self._pump()
                self.ctx.publish_snapshot(light=True)
            case Written():
                self.outbox.on_written(msg, self.connection.driver)
                self._pump()
            case _ if isinstance(msg, InstanceCommand):
                self._on_command(msg)
            case _:
                raise TypeError(f"unexpected message {msg!r}")

    def _on_driver(self, ev: driver.DriverEvent) -> None:
        conn, pairing = self.connection, self.pairing
        if not (isinstance(ev, driver.KeepAlive) and not ev.ok):
            conn.liveness.progress(self.ctx.clock.now())  # anything heard: the link is alive
        match ev:
            case driver.SendResult():
                self._on_send_result(ev)
            case driver.Connected():
                conn.on_connected(ev)
            case driver.Disconnected():
                conn.on_disconnected(ev)
            case driver.Conflict():
                conn.on_conflict(ev)
            case driver.LoggedOut():
                conn.on_logged_out(ev)
            case driver.Banned():
                conn.on_banned(ev)
            case driver.QrCode():
                pairing.on_qr(ev)
            case driver.PairCode():
                pairing.on_pair_code(ev)
            case driver.Paired():
                pairing.on_paired(ev)
            case driver.Receipt():
                self._on_receipt(ev)
            case driver.KeepAlive():
                conn.on_keepalive(ev)
            case driver.DriverAlarm():
                self.ctx.alarm(ev.kind, ev.message)
            case driver.IncomingMessage():
                self.inbound.on_incoming(ev)
            case driver.RequestDone():
                self.inbound.on_done(ev)

    def _on_command(self, cmd: InstanceCommand) -> None:
        reply: Future[Any] | None = cmd.reply
        try:
            result = self._run(cmd)
        except WazError as e:
            if reply is not None:
                reply.set_exception(e)
                return
            raise
        except Exception as e:
            # A bug: answer the waiting client, then let the actor fail so it is replaced.
            if reply is not None and not reply.done():
                reply.set_exception(Internal(f"instance {self.id} failed: {e}"))
            raise
        if reply is not None and result is not _LATER:
            reply.set_result(result)

    def _run(self, cmd: InstanceCommand) -> object:
        match cmd:
            case Start():
                return self._start()
            case Stop():
                return self._stop()
            case Restart():
                self._stop()
                return self._start()
            case Reset():
                return self._reset()
            case Logout():
                return self._logout()
            case Pair(phone=phone, reply=reply):
                return self._pair(phone, reply)
            case Cancel(message_id=message_id, untried_only=untried_only):
                return self.outbox.cancel(message_id, untried_only)
            case Purge(status=status):
                return self.outbox.purge(status)
            case Retry(message_ids=message_ids):
                return self._retry(message_ids)
            case Drain(reply=reply):
                return self._drain(reply)
            case GetState():
                return str(self.state)
            case Crash():
                raise RuntimeError(f"crash requested for {self.id}")
            case Query(request=request, reply=reply):
                self.inbound.query(request, reply)
                return _LATER

    # ------------------------------------------------------------------ commands

    def _start(self) -> str:
        self.ctx.want("running")
        if self.state == S.STOPPED:
            self.connection.connect("start")
        return str(self.state)

    def _stop(self) -> str:
        self.ctx.want("stopped")
        self.connection.close("stopped by operator")
        self.ctx.timers.cancel("connect", "connect_timeout", "probe", "ban_end", "pairing_deadline")
        self.ctx.set_state(S.STOPPED, "stopped by operator")
        return str(self.state)

    def _reset(self) -> str:
        """Operator override: close the breaker and forget the cooldown, then connect."""
        self.connection.reset()
        self.ctx.timers.cancel("probe")
        if self.state in (S.TRIPPED, S.COOLDOWN, S.BACKOFF):
            self.ctx.timers.cancel("connect")
            self.ctx.set_state(S.STOPPED, "reset by operator")
        if self.ctx.desired == "running" and self.state == S.STOPPED:
            self.connection.connect("reset")
        return str(self.state)

    def _logout(self) -> str:
        if self.connection.driver is not None:
            self.connection.driver.logout()
        self.connection.close("logged out by operator")
        self.ctx.timers.cancel("connect")
        self.ctx.set_state(S.LOGGED_OUT, "logged out by operator")
        return str(self.state)

    def _pair(self, phone: str | None, reply: Future[dict[str, Any]] | None) -> object:
        conn, pairing = self.connection, self.pairing
        if self.state == S.ONLINE:
            raise InvalidState(f"instance {self.id} is online; log out before pairing again")
        if self.state == S.BANNED:
            raise InvalidState(f"instance {self.id} is banned until the ban expires")
        pairing.phone = phone
        self.ctx.want("running")
        if self.state == S.PAIRING and pairing.shown:
            if phone and conn.driver is not None:
                conn.request_pair_code(phone)
                pairing.wait(reply)
                return _LATER
            return dict(pairing.shown)
        if self.state == S.CONNECTING:
            if phone and conn.driver is not None:
                conn.request_pair_code(phone)
            pairing.wait(reply)
            return _LATER
        # Pairing is an operator action: it skips the breaker (the phone is in their hand) but
        # never the one-session rule; the throttle still spaces attempts.
        conn.breaker.reset()
        self.ctx.timers.cancel("connect", "probe")
        conn.close("pairing")
        pairing.phone = phone  # closing forgot it
        self.ctx.set_state(S.STOPPED, "pairing requested")
        conn.connect("pair", force_now=True)
        pairing.wait(reply)
        return _LATER

    def _retry(self, message_ids: tuple[str, ...] | None) -> list[str]:
        ids = self.outbox.retry_failed(None if message_ids is None else list(message_ids))
        self._pump()
        self.ctx.publish_snapshot()
        return ids

    def _drain(self, reply: Future[int] | None) -> object:
        """Shutdown: send nothing new; settle what is in flight, then disconnect."""
        self.ctx.timers.cancel("pump", "connect")
        # A message whose `sending` write is not yet durable was never sent: closing puts it
        # back in the queue, and the commit that comes later finds nothing to send.
        if not self.outbox.handed_over:
            done: Future[int] = Future()
            done.set_result(1)
            self.outbox.draining = done  # and no timer may connect again
            self.connection.close("daemon stopping")
            return 1
        # Answered when the send in flight settles (see _on_send_result).
        self.outbox.draining = reply if reply is not None else Future()
        return _LATER

    # ------------------------------------------------------------------ between the parts

    def _pump(self) -> None:
        self.outbox.pump(self.connection.driver)

    def _on_send_result(self, ev: driver.SendResult) -> None:
        if not self.outbox.on_send_result(ev):
            return
        draining = self.outbox.draining
        if draining is not None:
            self.connection.close("daemon stopping")
            if not draining.done():
                draining.set_result(1)
        self._pump()
        self.ctx.publish_snapshot(light=True)

    def _on_store_retry(self) -> None:
        self.outbox.retry_store()
        self._pump()

    def _on_processing(self) -> None:
        if self.outbox.send_timed_out():
            # Outcome unknown: resend later with the same id; the link is evidently stuck,
            # so recycle the session through the normal backoff.
            self.connection.failed("send timed out")

    def _on_receipt(self, ev: driver.Receipt) -> None:
        ctx = self.ctx
        store = ctx.deps.store
        mid = ev.message_id
        if not mid and ev.wa_id:
            # Sent before a restart: the driver lost its wa_id map, the store kept the wa_id.
            mid = store.message_by_wa_id(ctx.id, ev.wa_id) or ""
        if not mid:
            ctx.log.debug("receipt for unknown WhatsApp id {}", ev.wa_id)
            return
        wall = ctx.clock.wall()
        ctx.deps.bus.publish(
            f"message.{ctx.id}.receipt",
            {"time": wall, "instance_id": ctx.id, "message_id": mid, "kind": ev.kind},
        )
        if ev.kind not in ("delivered", "read"):
            return
        store.record_receipt(mid, ev.kind, wall)
        # A status event too, so one subscription follows a message to the phone's screen. Its
        # status is the receipt ("delivered", "read"), not a MessageStatus: the message stays
        # `sent`, and counters of `sent` events do not count it twice.
        ctx.emit_message(
            mid, ev.kind, f"{ev.kind} receipt", wa_id=ev.wa_id, extra={f"{ev.kind}_at": wall}
        )
