"""The state the fake network keeps: instances, their sessions and their counters.

Everything here is guarded by the network's lock except `SimSession`'s own emit lock; the rules
live in `network.py`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from waz_actors.clock import TimerHandle
from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Disconnected,
    DriverEvent,
    LoggedOut,
    OutgoingMessage,
    Sink,
)

if TYPE_CHECKING:
    from waz_actors.drivers.sim.network import SimNetwork

# Session states (guarded by the network lock).
CONNECTING = "connecting"
PAIRING = "pairing"
LIVE = "live"
CLOSED = "closed"

# Events after which the session is over: nothing of it reaches the sink afterwards.
FINAL_EVENTS = (Conflict, Disconnected, LoggedOut, Banned)


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
class SimInstance:
    """One WhatsApp account as the network sees it."""

    instance_id: str
    jid: str
    creds: str = "valid"  # valid | revoked | none
    banned_until: float = 0.0
    send_fails: list[bool] = field(default_factory=list)  # one `permanent` flag per failing send
    connect_fails: int = 0
    hangs: int = 0
    blackholes: list[bool] = field(default_factory=list)  # one `deliver` flag per vanishing send
    connect_latency: float | None = None
    send_latency: float | None = None
    sessions: list[SimSession] = field(default_factory=list)  # open ones, oldest first
    stats: InstanceStats = field(default_factory=InstanceStats)

    def live_session(self) -> SimSession | None:
        for session in self.sessions:
            if session.state == LIVE:
                return session
        return None


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

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()

    def deliver(self, event: DriverEvent) -> None:
        with self._emit_lock:
            if not self._open:
                return
            if isinstance(event, FINAL_EVENTS):
                self._open = False
            safe_call(self._sink, event)


Emission = tuple[SimSession, DriverEvent]


def safe_call(sink: Sink, event: DriverEvent) -> None:
    """A sink's failure is logged, never raised into the network's thread."""
    try:
        sink(event)
    except Exception:
        logger.exception("sim sink failed on {}", type(event).__name__)
