"""A fake WhatsApp network: sessions, deliveries and fault injection, counted.

It models what the daemon's invariants are about, nothing more:

- one live session per instance id: a session that finishes connecting kicks the live session
  and any older attempt of the same id with `Conflict` (stream error 440, "replaced"). The kick
  counts as `conflicts_caused_by_ours` (two sessions of our own fleet fought) unless the kicked
  session's owner is dead (networked mode: a killed daemon's session lingers; replacing it is
  normal and counts as `stale_replaced`). An injected conflict (the owner opened WhatsApp Web
  elsewhere) counts as `conflicts_injected`;
- a message id is delivered once: a resend of a delivered id is accepted (ok) and counted as a
  duplicate, never delivered twice; with `dedup_resends=False` (a network like whatsmeow's,
  where a resend gets a new WhatsApp id) it is counted as a duplicate AND delivered again;
- a send whose answer is pending when its session drops loses its answer; the message reaches the
  recipient with probability `lost_ack_delivery_rate`, so the daemon's outcome-unknown path runs.

Credentials follow whatsmeow: `valid` (connect succeeds), `revoked` (the device was removed while
no session was up: the next connect ends with `LoggedOut` and the client forgets its credentials),
`none` (connect shows QR codes until `complete_pairing`). A `LoggedOut` received on a live session
also leaves the credentials `none`, so the daemon's next connect is a pairing connect.

Threads: any thread may call in. Every event reaches a sink on the scheduler's thread, never
while the network lock is held, so a sink may call back into the network.
"""

from __future__ import annotations

import itertools
import random
import string
import threading
from collections.abc import Callable
from typing import Any

from waz_actors.clock import Clock
from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    DriverRequest,
    FetchMedia,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    Receipt,
    SendResult,
    Sink,
)
from waz_actors.drivers.sim.checks import (
    check_instance_id,
    check_message,
    check_number,
    check_phone,
)
from waz_actors.drivers.sim.faults import DEFAULT_BAN, validate_fault
from waz_actors.drivers.sim.inbound import MediaShelf, answer, fetch_url, make_incoming
from waz_actors.drivers.sim.model import (
    CLOSED,
    CONNECTING,
    LIVE,
    PAIRING,
    Emission,
    SessionOwner,
    SimInstance,
    SimSession,
    TimerScheduler,
    jid_for,
    safe_call,
)
from waz_actors.drivers.sim.observe import Observed


class SimNetwork(Observed):
    """The in-process fake WhatsApp. Latencies are daemon seconds (scaled by the scheduler)."""

    def __init__(
        self,
        scheduler: TimerScheduler,
        clock: Clock,
        *,
        connect_latency: float = 0.5,
        send_latency: float = 0.2,
        qr_interval: float = 20.0,
        lost_ack_delivery_rate: float = 0.5,
        auto_pair: bool = True,
        receipts: bool = False,
        dedup_resends: bool = True,
        rand: random.Random | None = None,
    ) -> None:
        for name, value in (
            ("connect_latency", connect_latency),
            ("send_latency", send_latency),
        ):
            check_number(name, value, minimum=0.0)
        check_number("qr_interval", qr_interval, minimum=0.0, strict=True)
        check_number("lost_ack_delivery_rate", lost_ack_delivery_rate, minimum=0.0)
        if lost_ack_delivery_rate > 1:
            raise ValueError("lost_ack_delivery_rate must be between 0 and 1")
        self.scheduler = scheduler
        self.clock = clock
        self.connect_latency = float(connect_latency)
        self.send_latency = float(send_latency)
        self.qr_interval = float(qr_interval)
        self.lost_ack_delivery_rate = float(lost_ack_delivery_rate)
        self.auto_pair = auto_pair
        self.receipts = receipts  # emit Receipt("delivered") a send latency after each ok
        self.dedup_resends = dedup_resends
        self.rand = rand if rand is not None else random.Random()
        self._lock = threading.Lock()
        self._instances: dict[str, SimInstance] = {}
        self._delivered: set[str] = set()
        # (message_id, instance_id, to, wall time): tuples, as benchmarks deliver millions
        self._log: list[tuple[str, str, str, float]] = []
        # message_id -> size, sha256, mime, kind of the media it delivered (media messages only)
        self._media: dict[str, dict[str, Any]] = {}
        self._faults: dict[str, int] = {}
        self._session_ids = itertools.count(1)
        self.media = MediaShelf()
        self.incoming = 0  # messages delivered to the daemon by `incoming` faults

    # --- sessions ---------------------------------------------------------------------------

    def open_session(
        self, instance_id: str, sink: Sink, *, owner: SessionOwner | None = None
    ) -> SimSession:
        check_instance_id(instance_id)
        if not callable(sink):
            raise TypeError("sink must be callable")
        with self._lock:
            inst = self._instance(instance_id)
            inst.stats.connects += 1
            session = SimSession(self, next(self._session_ids), instance_id, sink, owner)
            inst.sessions.append(session)
            if inst.hangs:
                # Never answers: only the daemon's connection timeout (and disconnect) ends it.
                inst.hangs -= 1
                session.hung = True
                return session
            fail = inst.connect_fails > 0
            if fail:
                inst.connect_fails -= 1
            latency = self._latency(inst, "connect")
        self._later(latency, lambda: self._finish_connect(session, fail), session)
        return session

    def complete_pairing(self, instance_id: str) -> None:
        """Test hook: the phone scanned the QR (or typed the code) of the pairing session."""
        check_instance_id(instance_id)
        with self._lock:
            inst = self._instances.get(instance_id)
            pairing = [s for s in inst.sessions if s.state == PAIRING] if inst else []
            if not pairing:
                raise ValueError(f"instance {instance_id!r} has no session waiting for pairing")
            session = pairing[-1]
            inst = self._instance(instance_id)
            inst.creds = "valid"
            session.cancel_timers()
            out: list[Emission] = [(session, Paired(inst.jid))]
            out += self._go_live(inst, session)
        self.post(lambda: self._emit(out))

    def logout(self, instance_id: str, sink: Sink) -> None:
        """Log out an instance that has no session (the daemon forgets the credentials)."""
        check_instance_id(instance_id)
        with self._lock:
            inst = self._instance(instance_id)
            inst.creds = "none"
        self.post(lambda: safe_call(sink, LoggedOut("logged out")))

    def post(self, fn: Callable[[], None]) -> None:
        """Run `fn` soon on the thread that emits events."""
        self.scheduler.call_later(0.0, fn)

    # --- faults -----------------------------------------------------------------------------

    def inject(self, instance_id: str, kind: str, **params: Any) -> None:
        """Inject a fault; bad input raises ValueError and changes nothing."""
        check_instance_id(instance_id)
        params = validate_fault(kind, params)
        with self._lock:
            inst = self._instances.get(instance_id)
            live = inst.live_session() if inst else None
            if kind in ("conflict", "disconnect", "receipt", "incoming") and live is None:
                raise ValueError(f"{kind}: instance {instance_id!r} has no live session")
            if kind == "logout" and live is None:
                creds = inst.creds if inst else ("valid" if self.auto_pair else "none")
                if creds == "none":
                    raise ValueError(f"logout: instance {instance_id!r} is not paired")
            inst = self._instance(instance_id)
            out = self._apply_fault(inst, live, kind, params)
            self._faults[kind] = self._faults.get(kind, 0) + 1
        if out:
            self.post(lambda: self._emit(out))

    def _apply_fault(
        self, inst: SimInstance, live: SimSession | None, kind: str, params: dict[str, Any]
    ) -> list[Emission]:
        if kind == "conflict":
            assert live is not None
            inst.stats.conflicts_injected += 1
            self._close_locked(inst, live)
            return [(live, Conflict())]
        if kind == "disconnect":
            assert live is not None
            self._close_locked(inst, live)
            return [(live, Disconnected(code=428, reason="connection closed", transient=True))]
        if kind == "logout":
            if live is None:
                inst.creds = "revoked"
                return []
            inst.creds = "none"
            self._close_locked(inst, live)
            return [(live, LoggedOut("device removed"))]
        if kind == "receipt":
            assert live is not None
            wa_id = str(params["message_id"])  # the sim's WhatsApp id is our message id
            return [(live, Receipt(message_id="", kind=str(params["status"]), wa_id=wa_id))]
        if kind == "incoming":
            assert live is not None
            msg = make_incoming(params, self.clock.wall(), self.rand)
            if msg.media_data is not None:
                self.media.put(msg.wa_id, msg.media_data)
            self.incoming += 1
            return [(live, msg)]
        if kind == "ban":
            inst.banned_until = self.clock.now() + params.get("duration", DEFAULT_BAN)
            if live is None:
                return []
            self._close_locked(inst, live)
            return [(live, Banned(until=inst.banned_until, reason="banned"))]
        if kind == "send_fail":
            inst.send_fails += [bool(params.get("permanent", False))] * params.get("count", 1)
        elif kind == "latency":
            if "connect" in params:
                inst.connect_latency = float(params["connect"])
            if "send" in params:
                inst.send_latency = float(params["send"])
        elif kind == "connect_fail":
            inst.connect_fails += params.get("count", 1)
        elif kind == "hang":
            inst.hangs += params.get("count", 1)
        elif kind == "blackhole":
            inst.blackholes += [bool(params.get("deliver", False))] * params.get("count", 1)
        return []

    # --- requests (group list, contact check, media) ------------------------------------------

    def query(self, instance_id: str, request: DriverRequest, reply: Sink) -> None:
        """Answer a driver request through `reply` after a send latency (a URL-backed media
        after its download, on a thread of its own)."""
        done = answer(instance_id, request, self.media)
        if done is None:
            assert isinstance(request, FetchMedia)

            def fetch() -> None:
                result = fetch_url(request)
                self.post(lambda: safe_call(reply, result))

            threading.Thread(target=fetch, name="sim-media", daemon=True).start()
            return
        with self._lock:
            inst = self._instances.get(instance_id)
            latency = self._latency(inst, "send") if inst else self.send_latency
        self.scheduler.call_later(latency, lambda: safe_call(reply, done))

    # --- internals (the lock is held in every *_locked / _finish_* / _go_live) --------------

    def _instance(self, instance_id: str) -> SimInstance:
        inst = self._instances.get(instance_id)
        if inst is None:
            inst = SimInstance(instance_id, jid_for(instance_id))
            if not self.auto_pair:
                inst.creds = "none"
            self._instances[instance_id] = inst
        return inst

    def _latency(self, inst: SimInstance, which: str) -> float:
        if which == "connect":
            own = inst.connect_latency
            return self.connect_latency if own is None else own
        own = inst.send_latency
        return self.send_latency if own is None else own

    def _later(
        self, delay: float, step: Callable[[], list[Emission]], session: SimSession | None = None
    ) -> None:
        """Run `step` under the lock after `delay`, then emit what it returns (lock released)."""

        def run() -> None:
            with self._lock:
                out = step()
            self._emit(out)

        handle = self.scheduler.call_later(delay, run)
        if session is not None:
            session.timers.append(handle)

    def _emit(self, out: list[Emission]) -> None:
        for session, event in out:
            session.deliver(event)

    def _finish_connect(self, session: SimSession, fail: bool) -> list[Emission]:
        if session.state != CONNECTING:
            return []
        inst = self._instances[session.instance_id]
        if fail:
            self._close_locked(inst, session)
            return [(session, Disconnected(code=None, reason="connection failed", transient=True))]
        if inst.banned_until > self.clock.now():
            self._close_locked(inst, session)
            return [(session, Banned(until=inst.banned_until, reason="banned"))]
        if inst.creds == "revoked":
            inst.creds = "none"  # the client drops its stale credentials, as whatsmeow does
            self._close_locked(inst, session)
            return [(session, LoggedOut("device removed"))]
        if inst.creds == "none":
            session.state = PAIRING
            out = self._qr_tick(inst, session)
            if session.wants_pair_code:
                out.append((session, PairCode(self._pair_code())))
            return out
        return self._go_live(inst, session)

    def _go_live(self, inst: SimInstance, session: SimSession) -> list[Emission]:
        out: list[Emission] = []
        for other in list(inst.sessions):
            # Live sessions are replaced; older attempts still connecting are kicked too. A newer
            # attempt still connecting is left alone: it will kick this one when it completes.
            if other is session or (other.state != LIVE and other.session_id > session.session_id):
                continue
            if other.owner_alive():
                inst.stats.conflicts_caused_by_ours += 1
            else:
                inst.stats.stale_replaced += 1
            self._close_locked(inst, other)
            if not other.hung:
                out.append((other, Conflict()))
        session.state = LIVE
        out.append((session, Connected(inst.jid)))
        return out

    def _qr_tick(self, inst: SimInstance, session: SimSession) -> list[Emission]:
        if session.state != PAIRING:
            return []
        inst.stats.qr_codes += 1
        code = "2@" + "".join(self.rand.choices(string.ascii_letters + string.digits, k=32))
        session.timers.clear()  # earlier timers have fired; keep the list from growing
        self._later(self.qr_interval, lambda: self._qr_tick(inst, session), session)
        return [(session, QrCode(code, self.qr_interval))]

    def _pair_code(self) -> str:
        letters = "".join(self.rand.choices(string.ascii_uppercase, k=8))
        return f"{letters[:4]}-{letters[4:]}"

    def _send(self, session: SimSession, message: OutgoingMessage) -> None:
        check_message(message)
        mid = message.message_id
        with self._lock:
            inst = self._instances[session.instance_id]
            if session.state != LIVE:
                inst.stats.sends_failed += 1
                result = SendResult(mid, ok=False, error="not connected", permanent=False)
                self._later(0.0, lambda: [(session, result)])
                return
            latency = self._latency(inst, "send")
            if inst.send_fails:
                permanent = inst.send_fails.pop(0)
                inst.stats.sends_failed += 1
                failed = SendResult(
                    mid, ok=False, error="send failed (injected)", permanent=permanent
                )
                self._later(latency, lambda: [(session, failed)] if session.live else [])
                return
            if inst.blackholes:
                # Swallowed: no answer, ever; the session stays up (connected but dead).
                if inst.blackholes.pop(0):
                    self._record(inst, message)
                return
        self._later(latency, lambda: self._finish_send(inst, session, message))

    def _finish_send(
        self, inst: SimInstance, session: SimSession, message: OutgoingMessage
    ) -> list[Emission]:
        mid = message.message_id
        if session.state == LIVE:
            self._record(inst, message)
            if self.receipts:
                receipt = Receipt(mid, "delivered")
                self._later(
                    self._latency(inst, "send"),
                    lambda: [(session, receipt)] if session.live else [],
                )
            return [(session, SendResult(mid, ok=True, wa_id=mid))]
        # The session dropped with the answer in flight: the outcome is unknown to the daemon.
        inst.stats.lost_acks += 1
        if self.rand.random() < self.lost_ack_delivery_rate:
            inst.stats.lost_ack_delivered += 1
            self._record(inst, message)
        return []

    def _record(self, inst: SimInstance, message: OutgoingMessage) -> None:
        if message.message_id in self._delivered:
            inst.stats.duplicates += 1
            if self.dedup_resends:
                return
            # No dedup: the phone shows it twice (delivered_ids lists the id twice).
            inst.stats.delivered += 1
            self._log.append((message.message_id, inst.instance_id, message.to, self.clock.wall()))
            return
        self._delivered.add(message.message_id)
        inst.stats.delivered += 1
        if message.media and "sha256" in message.media:
            keys = ("size", "sha256", "mime", "kind")
            self._media[message.message_id] = {k: message.media.get(k) for k in keys}
        self._log.append((message.message_id, inst.instance_id, message.to, self.clock.wall()))

    def _logout(self, session: SimSession) -> None:
        with self._lock:
            if session.state == CLOSED:
                return
            inst = self._instances[session.instance_id]
            inst.creds = "none"
            self._close_locked(inst, session)
            latency = self._latency(inst, "send")
        self._later(latency, lambda: [(session, LoggedOut("logged out"))])

    def _request_pair_code(self, session: SimSession, phone: str) -> None:
        check_phone(phone)
        with self._lock:
            state = session.state
            latency = self._latency(self._instances[session.instance_id], "send")
            if state == CONNECTING:
                session.wants_pair_code = True
                return
        if state == PAIRING:
            self._later(
                latency,
                lambda: (
                    [(session, PairCode(self._pair_code()))] if session.state == PAIRING else []
                ),
            )
        elif state == LIVE:
            alarm = DriverAlarm("pair_code_refused", "the instance is already paired")
            self._later(latency, lambda: [(session, alarm)])

    def _close(self, session: SimSession) -> None:
        with self._lock:
            inst = self._instances.get(session.instance_id)
            if inst is not None:
                self._close_locked(inst, session)

    def _close_locked(self, inst: SimInstance, session: SimSession) -> None:
        if session.state == CLOSED:
            return
        session.state = CLOSED
        session.cancel_timers()
        if session in inst.sessions:
            inst.sessions.remove(session)
