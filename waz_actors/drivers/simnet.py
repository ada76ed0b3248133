"""A fake WhatsApp network: sessions, deliveries and fault injection, counted.

It models what the daemon's invariants are about, nothing more:

- one live session per instance id: a session that finishes connecting kicks the live session
  and any older attempt of the same id with `Conflict` (stream error 440, "replaced"). The kick
  counts as `conflicts_caused_by_ours` (two sessions of our own fleet fought) unless the kicked
  session's owner is dead (networked mode: a killed daemon's session lingers; replacing it is
  normal and counts as `stale_replaced`). An injected conflict (the owner opened WhatsApp Web
  elsewhere) counts as `conflicts_injected`;
- a message id is delivered once: a resend of a delivered id is accepted (ok) and counted as a
  duplicate, never delivered twice;
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

import hashlib
import itertools
import random
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from loguru import logger

from waz_actors import addressing
from waz_actors.clock import Clock, TimerHandle
from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    DriverEvent,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    Receipt,
    SendResult,
    Sink,
)

FAULT_KINDS = (
    "conflict",
    "disconnect",
    "logout",
    "ban",
    "send_fail",
    "latency",
    "connect_fail",
    "hang",
)

# Parameters each fault kind accepts; anything else is a ValueError.
_FAULT_PARAMS: dict[str, tuple[str, ...]] = {
    "conflict": (),
    "disconnect": (),
    "logout": (),
    "ban": ("duration",),
    "send_fail": ("count", "permanent"),
    "latency": ("connect", "send"),
    "connect_fail": ("count",),
    "hang": ("count",),
}

DEFAULT_BAN = 3600.0

# Session states (guarded by the network lock).
CONNECTING = "connecting"
PAIRING = "pairing"
LIVE = "live"
CLOSED = "closed"


class TimerScheduler(Protocol):
    """`waz_actors.clock.Scheduler` (a thread) or `ManualScheduler` (tests advance it)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class SessionOwner(Protocol):
    """Who holds a session: in networked mode, a daemon process that may have died."""

    def alive(self) -> bool: ...


@dataclass
class InstanceStats:
    delivered: int = 0
    duplicates: int = 0
    connects: int = 0
    conflicts_injected: int = 0
    conflicts_caused_by_ours: int = 0
    stale_replaced: int = 0
    sends_failed: int = 0
    lost_acks: int = 0
    lost_ack_delivered: int = 0
    qr_codes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


STAT_KEYS = tuple(f.name for f in fields(InstanceStats))


@dataclass
class _Instance:
    instance_id: str
    jid: str
    creds: str = "valid"  # valid | revoked | none
    banned_until: float = 0.0
    send_fails: list[bool] = field(default_factory=list)  # one `permanent` flag per failing send
    connect_fails: int = 0
    hangs: int = 0
    connect_latency: float | None = None
    send_latency: float | None = None
    sessions: list[SimSession] = field(default_factory=list)  # open ones, oldest first
    stats: InstanceStats = field(default_factory=InstanceStats)


def jid_for(instance_id: str) -> str:
    """A stable fake phone number per instance id."""
    digits = int.from_bytes(hashlib.sha256(instance_id.encode()).digest()[:8], "big") % 10**10
    return f"55{digits:010d}@s.whatsapp.net"


class SimSession:
    """One connection of one instance. Created by `SimNetwork.open_session`."""

    def __init__(
        self,
        network: SimNetwork,
        session_id: int,
        instance_id: str,
        sink: Sink,
        owner: SessionOwner | None,
    ) -> None:
        self._network = network
        self.session_id = session_id
        self.instance_id = instance_id
        self.owner = owner
        self.state = CONNECTING
        self.hung = False
        self.wants_pair_code = False
        self.timers: list[TimerHandle] = []
        self._sink = sink
        # Held while an event is handed to the sink and while closing: once close() returns,
        # no event of this session reaches the sink. Reentrant so a sink may close its session.
        self._emit_lock = threading.RLock()
        self._open = True

    @property
    def live(self) -> bool:
        return self.state == LIVE

    def owner_alive(self) -> bool:
        return self.owner is None or self.owner.alive()

    def send(self, message: OutgoingMessage) -> None:
        self._network._send(self, message)

    def logout(self) -> None:
        self._network._logout(self)

    def request_pair_code(self, phone: str) -> None:
        self._network._request_pair_code(self, phone)

    def close(self) -> None:
        """Idempotent; silence afterwards."""
        with self._emit_lock:
            self._open = False
        self._network._close(self)

    def _deliver(self, event: DriverEvent, final: bool) -> None:
        with self._emit_lock:
            if not self._open:
                return
            if final:
                self._open = False
            try:
                self._sink(event)
            except Exception:
                logger.exception("sim sink failed on {}", type(event).__name__)


Emission = tuple[SimSession, DriverEvent]
_FINAL_EVENTS = (Conflict, Disconnected, LoggedOut, Banned)


class SimNetwork:
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
        rand: random.Random | None = None,
    ) -> None:
        for name, value in (
            ("connect_latency", connect_latency),
            ("send_latency", send_latency),
        ):
            _check_number(name, value, minimum=0.0)
        _check_number("qr_interval", qr_interval, minimum=0.0, strict=True)
        _check_number("lost_ack_delivery_rate", lost_ack_delivery_rate, minimum=0.0)
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
        self.rand = rand if rand is not None else random.Random()
        self._lock = threading.Lock()
        self._instances: dict[str, _Instance] = {}
        self._delivered: set[str] = set()
        # (message_id, instance_id, to, wall time): tuples, as benchmarks deliver millions
        self._log: list[tuple[str, str, str, float]] = []
        self._faults: dict[str, int] = {}
        self._session_ids = itertools.count(1)

    # --- sessions ---------------------------------------------------------------------------

    def open_session(
        self, instance_id: str, sink: Sink, *, owner: SessionOwner | None = None
    ) -> SimSession:
        _check_instance_id(instance_id)
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
        _check_instance_id(instance_id)
        with self._lock:
            inst = self._instances.get(instance_id)
            pairing = [s for s in inst.sessions if s.state == PAIRING] if inst else []
            if not pairing:
                raise ValueError(f"instance {instance_id!r} has no session waiting for pairing")
            session = pairing[-1]
            inst = self._instance(instance_id)
            inst.creds = "valid"
            _cancel_timers(session)
            out: list[Emission] = [(session, Paired(inst.jid))]
            out += self._go_live(inst, session)
        self.post(lambda: self._emit(out))

    def logout(self, instance_id: str, sink: Sink) -> None:
        """Log out an instance that has no session (the daemon forgets the credentials)."""
        _check_instance_id(instance_id)
        with self._lock:
            inst = self._instance(instance_id)
            inst.creds = "none"
        self.post(lambda: _safe_call(sink, LoggedOut("logged out")))

    def post(self, fn: Callable[[], None]) -> None:
        """Run `fn` soon on the thread that emits events."""
        self.scheduler.call_later(0.0, fn)

    # --- faults -----------------------------------------------------------------------------

    def inject(self, instance_id: str, kind: str, **params: Any) -> None:
        """Inject a fault; bad input raises ValueError and changes nothing."""
        _check_instance_id(instance_id)
        params = validate_fault(kind, params)
        with self._lock:
            inst = self._instances.get(instance_id)
            live = _live_session(inst)
            if kind in ("conflict", "disconnect") and live is None:
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
        self, inst: _Instance, live: SimSession | None, kind: str, params: dict[str, Any]
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
        return []

    # --- stats ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            per = {iid: inst.stats.as_dict() for iid, inst in self._instances.items()}
            faults = dict(self._faults)
        totals = {key: sum(s[key] for s in per.values()) for key in STAT_KEYS}
        return {"instances": per, "totals": totals, "faults": faults}

    def delivered_ids(self, instance_id: str) -> list[str]:
        with self._lock:
            return [mid for mid, iid, _, _ in self._log if iid == instance_id]

    def delivered_log(self) -> list[dict[str, Any]]:
        with self._lock:
            log = list(self._log)
        return [
            {"message_id": mid, "instance_id": iid, "to": to, "time": t} for mid, iid, to, t in log
        ]

    def session_states(self, instance_id: str) -> list[str]:
        """States of the instance's open sessions, oldest first (diagnostics, invariant checks)."""
        with self._lock:
            inst = self._instances.get(instance_id)
            return [session.state for session in inst.sessions] if inst else []

    def instance_ids(self, *, live_only: bool = False) -> list[str]:
        with self._lock:
            return sorted(
                iid
                for iid, inst in self._instances.items()
                if not live_only or _live_session(inst) is not None
            )

    # --- internals (the lock is held in every *_locked / _finish_* / _go_live) --------------

    def _instance(self, instance_id: str) -> _Instance:
        inst = self._instances.get(instance_id)
        if inst is None:
            inst = _Instance(instance_id, jid_for(instance_id))
            if not self.auto_pair:
                inst.creds = "none"
            self._instances[instance_id] = inst
        return inst

    def _latency(self, inst: _Instance, which: str) -> float:
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
            session._deliver(event, isinstance(event, _FINAL_EVENTS))

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

    def _go_live(self, inst: _Instance, session: SimSession) -> list[Emission]:
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

    def _qr_tick(self, inst: _Instance, session: SimSession) -> list[Emission]:
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
        self._later(latency, lambda: self._finish_send(inst, session, message))

    def _finish_send(
        self, inst: _Instance, session: SimSession, message: OutgoingMessage
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

    def _record(self, inst: _Instance, message: OutgoingMessage) -> None:
        if message.message_id in self._delivered:
            inst.stats.duplicates += 1
            return
        self._delivered.add(message.message_id)
        inst.stats.delivered += 1
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

    def _close_locked(self, inst: _Instance, session: SimSession) -> None:
        if session.state == CLOSED:
            return
        session.state = CLOSED
        _cancel_timers(session)
        if session in inst.sessions:
            inst.sessions.remove(session)


# --- fault schedule ---------------------------------------------------------------------------

# Faults a schedule aims at an instance with a live session; the others prepare the next attempt.
_NEEDS_LIVE = ("conflict", "disconnect", "logout", "ban")


class FaultSchedule:
    """Random faults at given rates per daemon hour (a Poisson process), for chaos runs."""

    def __init__(
        self,
        rates_per_hour: Mapping[str, float],
        rand: random.Random | None = None,
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        rates: dict[str, float] = {}
        for kind, rate in rates_per_hour.items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
            _check_number(f"rate of {kind}", rate, minimum=0.0)
            if rate > 0:
                rates[kind] = float(rate)
        self.params = {k: validate_fault(k, dict(v)) for k, v in (params or {}).items()}
        if "latency" in rates and not self.params.get("latency"):
            raise ValueError("a latency fault schedule needs params {'latency': {...}}")
        self.rates = rates
        self.rand = rand if rand is not None else random.Random()
        self.fired: dict[str, int] = dict.fromkeys(rates, 0)
        self.skipped: dict[str, int] = dict.fromkeys(rates, 0)
        self._network: SimNetwork | None = None
        self._timer: TimerHandle | None = None
        self._next_due: float | None = None
        self._lock = threading.Lock()

    def start(self, network: SimNetwork) -> None:
        with self._lock:
            if self._network is not None:
                raise RuntimeError("fault schedule already started")
            self._network = network
            self._arm()

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self._network = None
            self._next_due = None

    def _arm(self) -> None:
        total = sum(self.rates.values())
        if self._network is None or total <= 0:
            return
        now = self._network.clock.now()
        # Planned times advance from the previous plan, not from when the timer really fired,
        # so scheduler lateness does not drag the rate down.
        base = now if self._next_due is None else self._next_due
        self._next_due = base + self.rand.expovariate(total / 3600.0)
        delay = max(0.0, self._next_due - now)
        self._timer = self._network.scheduler.call_later(delay, self._fire)

    def _fire(self) -> None:
        with self._lock:
            network = self._network
            if network is None:
                return
            kinds = list(self.rates)
            kind = self.rand.choices(kinds, weights=[self.rates[k] for k in kinds])[0]
            # The target is drawn from every instance the network knows, and the fault is
            # skipped when it needs a live session and that one has none: so each instance
            # sees its share of the rate, as when its owner opens WhatsApp Web elsewhere.
            # (Drawing among live sessions only would pile a fleet's faults onto the few
            # instances still online while the others cool down.)
            targets = network.instance_ids()
            target = self.rand.choice(targets) if targets else None
            needs_live = target is not None and kind in _NEEDS_LIVE
            if needs_live and target not in network.instance_ids(live_only=True):
                target = None
            self._arm()
        if target is None:
            self.skipped[kind] += 1
            return
        try:
            network.inject(target, kind, **self.params.get(kind, {}))
            self.fired[kind] += 1
        except ValueError:
            self.skipped[kind] += 1  # the session dropped between the pick and the fault


def parse_fault_rates(text: str) -> dict[str, float]:
    """`conflict=2,disconnect=4` -> {"conflict": 2.0, "disconnect": 4.0} (rates per hour)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        if not sep or kind not in FAULT_KINDS:
            raise ValueError(
                f"bad fault rate {part!r}: want kind=rate, kinds: {', '.join(FAULT_KINDS)}"
            )
        try:
            rates[kind] = float(value)
        except ValueError:
            raise ValueError(f"bad fault rate {part!r}: {value!r} is not a number") from None
        _check_number(f"rate of {kind}", rates[kind], minimum=0.0)
    return rates


# --- validation helpers -----------------------------------------------------------------------


def validate_fault(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check a fault kind and its parameters; return them normalised or raise ValueError."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
    allowed = _FAULT_PARAMS[kind]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) or "none"
        raise ValueError(f"{kind}: unknown parameter(s) {', '.join(unknown)}; accepted: {accepted}")
    out = dict(params)
    if "count" in out and (
        not isinstance(out["count"], int) or isinstance(out["count"], bool) or out["count"] < 1
    ):
        raise ValueError(f"{kind}: count must be an integer >= 1")
    if "permanent" in out and not isinstance(out["permanent"], bool):
        raise ValueError(f"{kind}: permanent must be true or false")
    if "duration" in out:
        _check_number(f"{kind}: duration", out["duration"], minimum=0.0, strict=True)
    for key in ("connect", "send"):
        if key in out:
            _check_number(f"{kind}: {key}", out[key], minimum=0.0)
    if kind == "latency" and not out:
        raise ValueError("latency: give connect and/or send (daemon seconds)")
    return out


def check_message(message: OutgoingMessage) -> None:
    if not isinstance(message, OutgoingMessage):
        raise TypeError(f"send() takes an OutgoingMessage, got {type(message).__name__}")
    if not isinstance(message.message_id, str) or not message.message_id:
        raise ValueError("message_id must be a non-empty string")


def check_phone(phone: str) -> str:
    if not isinstance(phone, str):
        raise ValueError(f"phone must be a string, got {phone!r}")
    try:
        return addressing.check_phone(phone)
    except ValueError as e:
        raise ValueError(f"phone {e}, got {phone!r}") from None


def _check_instance_id(instance_id: str) -> None:
    if not isinstance(instance_id, str) or not instance_id:
        raise ValueError("instance_id must be a non-empty string")


def _check_number(name: str, value: Any, *, minimum: float, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")


def _live_session(inst: _Instance | None) -> SimSession | None:
    if inst is None:
        return None
    for session in inst.sessions:
        if session.state == LIVE:
            return session
    return None


def _cancel_timers(session: SimSession) -> None:
    for handle in session.timers:
        handle.cancel()
    session.timers.clear()


def _safe_call(sink: Sink, event: DriverEvent) -> None:
    try:
        sink(event)
    except Exception:
        logger.exception("sim sink failed on {}", type(event).__name__)
