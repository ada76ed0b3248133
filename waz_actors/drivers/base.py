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


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message someone sent to this instance (a person, or a group the account is in).

    `wa_id` is WhatsApp's id of the message: the inbox deduplicates on it, so a driver may emit
    the same message again (a redelivery) without harm. `media` is metadata only (mime, size,
    caption, filename, and whatever the driver needs to fetch the bytes later under `ref`);
    `media_data` carries the bytes when the driver has them at no cost (the sim), else None.
    """

    wa_id: str
    chat: str  # the JID the message belongs to: the sender's, or the group's (@g.us)
    sender: str  # the JID of who wrote it (in a group: the member)
    time: float  # Unix time WhatsApp gives the message
    text: str | None = None
    media: Mapping[str, Any] | None = None
    media_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class RequestDone:
    """The answer to a driver request (`Queryable.query`): a result, or an error text."""

    request_id: str
    result: Any = None
    error: str | None = None


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
    | IncomingMessage
    | RequestDone
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


# --- requests that need an answer (actor -> driver, answered with RequestDone) ---------------


@dataclass(frozen=True, slots=True)
class ListGroups:
    """The groups the account is in: a list of {id, subject, participants}."""

    request_id: str


@dataclass(frozen=True, slots=True)
class CheckContacts:
    """Which of these phone numbers (digits) are on WhatsApp: a list of {number, on_whatsapp,
    jid}."""

    request_id: str
    numbers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FetchMedia:
    """The bytes of an incoming message's media (its `media` metadata as the driver gave it)."""

    request_id: str
    wa_id: str
    media: Mapping[str, Any]


DriverRequest = ListGroups | CheckContacts | FetchMedia


class Queryable(Protocol):
    """A driver that answers requests. Non-blocking like the rest: the answer is a
    `RequestDone` event with the same request_id, passed to the sink (only while the session
    that got the request is open; the actor fails what is pending when the session ends)."""

    def query(self, request: DriverRequest) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverContext:
    """What a driver factory gets to build a driver for one instance."""

    instance_id: str
    settings: Mapping[str, Any]
    state_dir: str
    sink: Sink
    # A cluster's PostgreSQL, where drivers keep sessions that must follow the instance's lease
    # (drivers/wm_pg.py); empty: sessions live under state_dir.
    session_url: str = ""


DriverFactory = Callable[[DriverContext], Driver]
