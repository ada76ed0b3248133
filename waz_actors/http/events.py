"""An asyncio event stream (`events.subscribe`) for one caller: the dashboard's live updates.

Each stream has a DEALER of its own, because the daemon pushes a subscription's events to the
connection that subscribed (docs/protocol.md, "Event streams"); the shared request DEALER of
http/client.py would have to sort them out from replies. The subscription carries the caller's
token, so the daemon filters by tenant and a browser sees only its own tenant's events. The
framing is control/client.py's `Subscription`: events are reply maps with the subscribe
request's id and an `event` key; we renew every third of the ttl while the caller reads.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import zmq
import zmq.asyncio

from waz_actors.control.protocol import encode_request, unpack
from waz_actors.errors import WazError
from waz_actors.http.client import DaemonError, DaemonUnreachable
from waz_actors.http.gateway import Settings

Event = tuple[str, dict[str, Any]]


class AsyncSubscription:
    def __init__(self, settings: Settings, token: str, topics: list[str]) -> None:
        self._settings = settings
        self._token = token
        self._topics = topics
        self._ctx = zmq.asyncio.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if settings.curve_server_key is not None and settings.curve_keypair is not None:
            self._sock.curve_serverkey = settings.curve_server_key
            self._sock.curve_publickey, self._sock.curve_secretkey = settings.curve_keypair
        self._sock.connect(settings.endpoint)
        self._ids = itertools.count(1)
        self._pending: list[Event] = []
        self.id = ""
        self.ttl = 30.0
        self._renew_at = 0.0

    async def open(self) -> str:
        """Subscribes; the subscription id (for `instance.pair`'s `subscription_id`)."""
        result = await self._call("events.subscribe", {"topics": self._topics})
        self.id = str(result["subscription_id"])
        self.ttl = float(result.get("ttl", 30.0))
        self._renew_at = time.monotonic() + self.ttl / 3
        return self.id

    async def _call(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        rid = f"e{next(self._ids)}"
        await self._sock.send(encode_request(rid, cmd, self._token, args))
        deadline = time.monotonic() + self._settings.timeout
        while (left := deadline - time.monotonic()) > 0:
            if not await self._sock.poll(timeout=int(left * 1000) + 1):
                break
            reply = self._decode(await self._sock.recv_multipart())
            if reply is None:
                continue
            if "event" in reply:
                self._keep(reply)
            elif reply.get("id") == rid:
                if reply.get("ok"):
                    result = reply.get("result")
                    return result if isinstance(result, dict) else {}
                err = reply.get("error") or {}
                details = err.get("details")
                raise DaemonError(
                    str(err.get("code", "internal")),
                    str(err.get("message", "")),
                    details if isinstance(details, dict) else {},
                )
        raise DaemonUnreachable(f"no reply to {cmd} from {self._settings.endpoint}")

    @staticmethod
    def _decode(frames: list[bytes]) -> dict[str, Any] | None:
        try:
            reply = unpack(frames[-1])
        except WazError:
            return None
        return reply if isinstance(reply, dict) else None

    def _keep(self, reply: dict[str, Any]) -> None:
        ev = reply["event"]
        if isinstance(ev, dict) and ev.get("subscription_id") == self.id:
            body = ev.get("body")
            self._pending.append((str(ev.get("topic", "")), body if isinstance(body, dict) else {}))

    async def recv(self, timeout: float) -> Event | None:
        """The next event, or None after `timeout` s; renews on the way."""
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() >= self._renew_at:
                await self._call("events.renew", {"subscription_id": self.id})
                self._renew_at = time.monotonic() + self.ttl / 3
            if self._pending:
                return self._pending.pop(0)
            now = time.monotonic()
            if now >= deadline:
                return None
            wait = min(deadline, self._renew_at) - now
            if await self._sock.poll(timeout=max(1, int(wait * 1000))):
                reply = self._decode(await self._sock.recv_multipart())
                if reply is not None and "event" in reply:
                    self._keep(reply)

    async def close(self) -> None:
        """Unsubscribes when it can (else the daemon drops it after its ttl), closes the socket."""
        try:
            if self.id:
                await asyncio.wait_for(
                    self._call("events.unsubscribe", {"subscription_id": self.id}), 2.0
                )
        except (DaemonError, DaemonUnreachable, TimeoutError, zmq.ZMQError):
            pass
        finally:
            self._sock.close(linger=0)
