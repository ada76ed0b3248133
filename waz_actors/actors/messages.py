"""Immutable messages between actors (and from timers and drivers to actors).

A few carry a `concurrent.futures.Future`: the sender waits on it (with a timeout) instead of
on an actor `ask`, so a reply can come later (after a driver event) without the actor blocking.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from waz_actors.drivers.base import DriverEvent, DriverRequest
from waz_actors.store.records import MessageRecord

# --- to an instance ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Boot:
    """First message to a new instance actor: load the queue, take up the wanted state."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    name: str
    token: int


@dataclass(frozen=True, slots=True)
class FromDriver:
    generation: int
    event: DriverEvent


# Operator commands. Each carries the Future its sender waits on (None: nobody waits); the
# instance answers it with the result, or with the exception that refused the command.


@dataclass(frozen=True, slots=True)
class Start:
    reply: Future[str] | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    reply: Future[str] | None = None


@dataclass(frozen=True, slots=True)
class Restart:
    reply: Future[str] | None = None


@dataclass(frozen=True, slots=True)
class Reset:
    """Close the breaker and forget the cooldown, then connect if wanted running."""

    reply: Future[str] | None = None


@dataclass(frozen=True, slots=True)
class Logout:
    reply: Future[str] | None = None


@dataclass(frozen=True, slots=True)
class Pair:
    """Answered with the QR code or the pairing code once the driver has one."""

    phone: str | None = None
    reply: Future[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    message_id: str
    reply: Future[str] | None = None
    untried_only: bool = False  # refuse a message that was handed to the driver before


@dataclass(frozen=True, slots=True)
class Purge:
    status: str = "queued"
    reply: Future[int] | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    message_ids: tuple[str, ...] | None = None  # None: every failed message
    reply: Future[list[str]] | None = None


@dataclass(frozen=True, slots=True)
class Drain:
    """Shutdown: send nothing new, settle the send in flight, disconnect; answered then."""

    reply: Future[int] | None = None


@dataclass(frozen=True, slots=True)
class GetState:
    """Answered with the current state; changes nothing (invariant 2)."""

    reply: Future[str] | None = None


@dataclass(frozen=True, slots=True)
class Crash:
    """Test hook (admin only through sim): raise inside the actor to exercise supervision."""

    reply: Future[None] | None = None


@dataclass(frozen=True, slots=True)
class Query:
    """A request the driver answers later (group list, contact check, media download): the
    reply is completed by the driver's RequestDone, never while the actor waits."""

    request: DriverRequest
    reply: Future[Any] | None = None


InstanceCommand = (
    Start
    | Stop
    | Restart
    | Reset
    | Logout
    | Pair
    | Cancel
    | Purge
    | Retry
    | Drain
    | GetState
    | Crash
    | Query
)


@dataclass(frozen=True, slots=True)
class DeleteSession:
    """instance.delete: close the session and drop its stored login (the supervisor stops the
    actor right after, then removes what is left on disk)."""


@dataclass(frozen=True, slots=True)
class Submit:
    record: MessageRecord


@dataclass(frozen=True, slots=True)
class StatusWrite:
    """One status change of a message, as an instance's outbox asks the store for it."""

    message_id: str
    status: str
    reason: str
    attempts: int | None = None
    error: str | None = None
    wa_id: str | None = None
    only_if: frozenset[str] | None = None
    media_info: Mapping[str, Any] | None = None  # what the driver fetched and sent
    # Given: set (possible_duplicate only ever turns on); None: left as stored.
    possible_duplicate: bool | None = None
    outcome_unknown: bool | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """The store's answer to a StatusWrite, posted back from the writer thread: every failure,
    and the commit of a `sending` write (the send waits for it)."""

    write: StatusWrite
    token: int
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    seq: int


# --- to the supervisor ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildFailed:
    instance_id: str
    actor_urn: str
    error: str


@dataclass(frozen=True, slots=True)
class Pong:
    instance_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class Sweep:
    pass


@dataclass(frozen=True, slots=True)
class CreateChild:
    instance_id: str
    driver: str
    tenant: str
    settings: dict[str, Any]
    desired: str
    reply: Future[str]


@dataclass(frozen=True, slots=True)
class DeleteChild:
    instance_id: str
    reply: Future[list[str]]


@dataclass(frozen=True, slots=True)
class StopAll:
    """Drain every child (settle in-flight sends, disconnect) then stop them."""

    timeout: float
    reply: Future[int]


@dataclass(frozen=True, slots=True)
class ClusterStart:
    """Cluster: this node holds the instance's lease now; run it."""

    instance_id: str


@dataclass(frozen=True, slots=True)
class ClusterWake:
    """Cluster: a message was queued on another node for this instance (None: for any instance
    of this node, after the wake channel reconnected)."""

    instance_id: str | None
    message_id: str | None = None  # None: the instance reads its whole queue again


@dataclass(frozen=True, slots=True)
class Reload:
    """Read queued rows other nodes accepted (never one already held): `message_id` alone, or
    the whole queue (None: a wake-up may have been missed)."""

    message_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterStop:
    """Cluster: the lease is being handed over; close the session. `on_stopped` is called once
    it is closed, so the lease can be released."""

    instance_id: str
    reason: str
    on_stopped: Callable[[str], None] | None = None


@dataclass(frozen=True, slots=True)
class ClusterFence:
    """Cluster: these leases are lost or fenced, and their sessions already closed by the fence
    (actors/sessions.py): stop the actors, all at once, reading nothing from the store."""

    instance_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Probe:
    """Liveness check of the supervisor (systemd watchdog): answered at once."""

    reply: Future[bool]


@dataclass(frozen=True, slots=True)
class Wedge:
    """Test hook: block the supervisor's thread, as a deadlock would."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Respawn:
    """Replace an instance's actor with one built from its (changed) stored record."""

    instance_id: str
    reply: Future[str]
