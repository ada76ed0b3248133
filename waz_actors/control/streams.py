"""Authenticated event streams over the control socket (`events.subscribe`).

A client subscribes on its DEALER connection; from then on the server pushes each event that its
token may see (its tenant's instances; an admin: all) and whose topic starts with one of its
prefixes, to that same peer, as a reply map carrying the subscribe request's `id` and an `event`
key (docs/protocol.md, "Event streams"). Clients that never subscribe see no change.

Costs stay bounded whatever the clients do: each subscription has a bounded queue (a slow
reader loses events, counted in its `dropped`, the daemon never waits), and a subscription not
renewed within its ttl is dropped, so a client that died costs nothing for long.

Private events (QR codes, pairing codes) go only to the subscriptions named in the
`instance.pair` request that caused them (`follow_pairing`), never to other subscriptions
and never to the PUB socket.

`on_event` / `on_private` run on the publishing threads (actors); `flush` and `expire` run on the
server's loop thread, which owns the sockets.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from waz_actors.control import protocol
from waz_actors.control.auth import Identity
from waz_actors.errors import Busy, NotFound

QUEUE_MAX = 1_000  # events waiting per subscription; beyond this they are dropped (counted)
TTL = 30.0  # seconds a subscription lives without a renew
MAX_SUBSCRIPTIONS = 1_000  # per daemon
TENANTS_CACHED = 100_000

Peer = object
Send = Callable[[Peer, list[bytes], bytes], None]


@dataclass(frozen=True)
class Origin:
    """Where the request being handled came from: set by the server around each request."""

    peer: Peer
    envelope: list[bytes]
    request_id: str | int


# The loop thread answers inline commands synchronously, so events.subscribe reads its peer here.
current_origin: ContextVar[Origin | None] = ContextVar("waz_current_origin", default=None)


@dataclass
class Subscription:
    id: str
    identity: Identity
    prefixes: tuple[str, ...]
    origin: Origin
    expires: float  # time.monotonic()
    queue: deque[tuple[str, Mapping[str, Any]]] = field(default_factory=deque)
    delivered: int = 0
    dropped: int = 0
    pairing: set[str] = field(default_factory=set)  # instance ids whose codes it receives

    def wants(self, topic: str, tenant: str | None) -> bool:
        if not self.identity.admin and (tenant is None or tenant != self.identity.tenant):
            return False
        return any(topic.startswith(p) for p in self.prefixes)

    def info(self, now: float) -> dict[str, Any]:
        return {
            "subscription_id": self.id,
            "topics": list(self.prefixes),
            "expires_in": round(max(0.0, self.expires - now), 3),
            "delivered": self.delivered,
            "dropped": self.dropped,
        }


class Streams:
    def __init__(
        self,
        tenant_of: Callable[[str], str | None],
        *,
        ttl: float = TTL,
        queue_max: int = QUEUE_MAX,
        max_subscriptions: int = MAX_SUBSCRIPTIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenant_of = tenant_of  # instance id -> tenant, from the status board
        self.ttl = ttl
        self.queue_max = queue_max
        self.max_subscriptions = max_subscriptions
        self._clock = clock
        self.wake: Callable[[], None] = lambda: None  # the server's loop wake-up
        self._subs: dict[str, Subscription] = {}
        self._lock = threading.Lock()
        self._tenants: dict[str, str] = {}  # cache: a deleted instance's last events still go
        self._ids = itertools.count(1)
        self.stats = {"stream_events": 0, "stream_dropped": 0, "stream_expired": 0}

    def __len__(self) -> int:
        return len(self._subs)

    # -- commands (loop thread or pool) ------------------------------------------------------

    def subscribe(
        self, identity: Identity, prefixes: tuple[str, ...], origin: Origin
    ) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            if len(self._subs) >= self.max_subscriptions:
                raise Busy("too many event subscriptions; retry later")
            sid = f"s{next(self._ids)}-{secrets.token_hex(6)}"
            sub = Subscription(sid, identity, prefixes or ("",), origin, now + self.ttl)
            self._subs[sid] = sub
            return {**sub.info(now), "ttl": self.ttl}

    def _own(self, identity: Identity, sid: str) -> Subscription:
        sub = self._subs.get(sid)
        # Another token's subscription is as unknown as a missing one.
        if sub is None or sub.identity != identity:
            raise NotFound(f"no subscription {sid!r}", {"field": "subscription_id"})
        return sub

    def renew(self, identity: Identity, sid: str) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            sub = self._own(identity, sid)
            sub.expires = now + self.ttl
            return sub.info(now)

    def unsubscribe(self, identity: Identity, sid: str) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            sub = self._own(identity, sid)
            del self._subs[sid]
            return {**sub.info(now), "unsubscribed": True}

    def follow_pairing(self, identity: Identity, sid: str, instance_id: str) -> None:
        """Codes shown for `instance_id` from now on go to this subscription."""
        with self._lock:
            self._own(identity, sid).pairing.add(instance_id)

    # -- events (any thread) ---------------------------------------------------------------

    def _tenant(self, body: Mapping[str, Any]) -> str | None:
        iid = body.get("instance_id")
        tenant = body.get("tenant")
        if isinstance(tenant, str):
            return tenant  # campaign events and alarms name their tenant, not an instance
        if not isinstance(iid, str):
            return None  # a daemon-wide event (an alarm without instance): admins only
        tenant = self._tenants.get(iid) or self._tenant_of(iid)
        if tenant is not None and len(self._tenants) < TENANTS_CACHED:
            self._tenants[iid] = tenant
        return tenant

    def on_event(self, topic: str, body: Mapping[str, Any]) -> None:
        if not self._subs:
            return
        tenant = self._tenant(body)
        queued = False
        with self._lock:
            for sub in self._subs.values():
                if sub.wants(topic, tenant):
                    queued = self._enqueue(sub, topic, body) or queued
        if body.get("state") == "deleted":
            # The id may be reused by another tenant: forget whose it was.
            self._tenants.pop(str(body.get("instance_id")), None)
            with self._lock:
                for sub in self._subs.values():
                    sub.pairing.discard(str(body.get("instance_id")))
        if queued:
            self.wake()

    def on_private(self, topic: str, body: Mapping[str, Any]) -> None:
        iid = body.get("instance_id")
        queued = False
        with self._lock:
            for sub in self._subs.values():
                if iid in sub.pairing:
                    queued = self._enqueue(sub, topic, body) or queued
        if queued:
            self.wake()

    def _enqueue(self, sub: Subscription, topic: str, body: Mapping[str, Any]) -> bool:
        if len(sub.queue) >= self.queue_max:
            sub.dropped += 1
            self.stats["stream_dropped"] += 1
            return False
        sub.queue.append((topic, body))
        return True

    # -- the loop thread -------------------------------------------------------------------

    def flush(self, send: Send) -> None:
        """Hand every queued event to `send` (the server's non-blocking socket send)."""
        with self._lock:
            work = [(s, list(s.queue)) for s in self._subs.values() if s.queue]
            for sub, _ in work:
                sub.queue.clear()
        for sub, events in work:
            for topic, body in events:
                frame = event_frame(sub.origin.request_id, sub.id, topic, body)
                send(sub.origin.peer, sub.origin.envelope, frame)
                sub.delivered += 1
                self.stats["stream_events"] += 1

    def expire(self) -> int:
        """Drop the subscriptions not renewed in time; how many went."""
        now = self._clock()
        with self._lock:
            gone = [sid for sid, s in self._subs.items() if s.expires <= now]
            for sid in gone:
                del self._subs[sid]
        self.stats["stream_expired"] += len(gone)
        return len(gone)

    def close(self) -> None:
        with self._lock:
            self._subs.clear()


def event_frame(rid: str | int, sid: str, topic: str, body: Mapping[str, Any]) -> bytes:
    """A pushed event: a reply map with the subscribe request's id and an `event` key."""
    event = {"subscription_id": sid, "topic": topic, "body": dict(body)}
    return protocol.pack({"v": protocol.VERSION, "id": rid, "ok": True, "event": event})
