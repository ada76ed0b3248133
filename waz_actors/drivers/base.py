"""The driver contract of docs/design.md.

A driver is owned by exactly one instance actor. Every method is non-blocking; results arrive
as immutable event objects passed to the `sink` the actor gave the driver. After `disconnect()`
returns the driver emits no further event for the closed session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    message_id: str  # our id, reused as the WhatsApp id where the driver allows
    to: str
    text: str | None = None
    media: Mapping[str, Any] | None = None


# --- events (driver -> actor) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    jid: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    code: int | None
    reason: str
    transient: bool = True


@dataclass(frozen=True, slots=True)
class Conflict:
    """Stream error 440: another session with the same credentials replaced ours."""

    reason: str = "replaced"


@dataclass(frozen=True, slots=True)
class LoggedOut:
    reason: str


@dataclass(frozen=True, slots=True)
class QrCode:
    code: str
    expires_in: float  # daemon seconds


@dataclass(frozen=True, slots=True)
class PairCode:
    code: str


@dataclass(frozen=True, slots=True)
class Paired:
    jid: str


@dataclass(frozen=True, slots=True)
class Banned:
    until: float  # daemon-clock time (clock.now()) when the ban ends
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SendResult:
    message_id: str
    ok: bool
    wa_id: str | None = None
    error: str | None = None
    permanent: bool = False
    # The media the driver fetched for this send (ok or not): {"mime", "kind", "size", "sha256"}.
    # None when the message has no media or its bytes were never fetched.
    media: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str  # ours; "" when the driver knows only WhatsApp's id (after a restart)
    kind: str  # delivered, read, played
    wa_id: str | None = None  # WhatsApp's id: the instance finds our message by it in the store


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """The library's own keep-alive: ok=False after a missed ping (`errors` in a row), ok=True
    when it answers again. A failing keep-alive is not progress for the liveness check."""

    ok: bool
    errors: int = 0


@dataclass(frozen=True, slots=True)
class DriverAlarm:
    """Something an operator must act on (client outdated, final connect failure)."""

    kind: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


DriverEvent = (
    Connected
    | Disconnected
    | Conflict
    | LoggedOut
    | QrCode
    | PairCode
    | Paired
    | Banned
    | SendResult
    | Receipt
    | KeepAlive
    | DriverAlarm
)

Sink = Callable[[DriverEvent], None]


class Driver(Protocol):
    """One WhatsApp session. Never blocks the calling actor."""

    # True when a resend of a message id reaches the recipient at most once (the network drops
    # the copy: the sim, or a driver that can choose the WhatsApp id). False (whatsmeow through
    # neonize 0.5.2, which cannot choose it): a resend after an unknown outcome may be a second
    # message, so the outbox marks it possible_duplicate or, by config, does not resend.
    dedup_resends: bool

    def connect(self) -> None: ...

    def disconnect(self) -> None:
        """Idempotent; no event for this session after it returns."""
        ...

    def send(self, message: OutgoingMessage) -> None: ...

    def logout(self) -> None: ...

    def request_pair_code(self, phone: str) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What a driver factory gets to build a driver for one instance."""

    instance_id: str
    settings: Mapping[str, Any]
    state_dir: str
    sink: Sink


DriverFactory = Callable[[DriverContext], Driver]
