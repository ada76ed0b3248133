"""What every command handler receives: the fleet, the store and who is asking.

Handlers take this instead of sockets, so tests can call them directly; every tenant check goes
through `instance()` / `message()`, which answer not_found for another tenant's ids so their
existence is never revealed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from waz_actors.config import Config
from waz_actors.control.auth import Auth, Identity
from waz_actors.errors import NotFound, ShuttingDown

if TYPE_CHECKING:
    from waz_actors.actors.board import InstanceSnapshot
    from waz_actors.actors.fleet import Fleet
    from waz_actors.control.streams import Streams
    from waz_actors.store import StoreAPI
    from waz_actors.store.records import MessageRecord


@dataclass(frozen=True)
class Context:
    fleet: Fleet
    store: StoreAPI
    config: Config
    auth: Auth
    identity: Identity
    started_at: float  # time.monotonic() when the server started
    server_stats: Callable[[], dict[str, Any]] = field(default=dict)
    streams: Streams | None = None  # the server's event streams (events.subscribe)

    @property
    def timeout(self) -> float:
        return self.config.control.ask_timeout

    @property
    def tenant_filter(self) -> str | None:
        """None for an admin (sees all tenants), else the caller's tenant."""
        return None if self.identity.admin else self.identity.tenant

    def instance(self, instance_id: str) -> InstanceSnapshot:
        snap = self.fleet.snapshot(instance_id)
        if snap is None or not self.identity.owns(snap.tenant):
            raise NotFound(f"no instance {instance_id!r}", {"field": "instance_id"})
        return snap

    def message(self, message_id: str) -> MessageRecord:
        rec = self.store.get_message(message_id)
        if rec is None or not self.identity.owns(rec.tenant):
            raise NotFound(f"no message {message_id!r}", {"field": "message_id"})
        return rec

    def require_accepting(self) -> None:
        if not self.fleet.accepting:
            raise ShuttingDown("the daemon is shutting down")
