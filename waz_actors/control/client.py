"""The client library: one DEALER socket, a typed method per command, errors as exceptions.

Imports only pyzmq, msgpack and the protocol module, so the CLI starts fast (no pykka, no store).
A Client is not thread-safe: use one per thread.

After a timeout the socket is replaced, so a late reply to the old request can never be taken
for the answer to a new one (replies are also matched by id). Only read-only commands are
retried: a timed-out `message.send` may or may not have been queued, and sending it again
would be a second message (use `idempotency_key` to make such a retry safe).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import msgpack
import zmq

from waz_actors.control.client_campaigns import CampaignCalls
from waz_actors.control.client_webhooks import WebhookCalls
from waz_actors.control.protocol import READONLY_COMMANDS, VERSION


class ClientError(Exception):
    """The daemon answered with an error; `code` is the protocol error code."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class Unreachable(Exception):
    """No answer from the daemon (not running, wrong endpoint, or too slow)."""

    def __init__(self, endpoint: str, reason: str = "no reply") -> None:
        super().__init__(f"{endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason


T = TypeVar("T")


def _drop_none(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class Client(CampaignCalls, WebhookCalls):
    def __init__(
        self,
        endpoint: str,
        token: str | None,
        timeout: float = 5.0,
        *,
        retries: int = 1,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self._curve_server_key = curve_server_key
        self._curve_keypair = curve_keypair
        self._ctx: zmq.Context[Any] = zmq.Context.instance()
        self._sock: zmq.Socket[Any] | None = None
        self._ids = itertools.count(1)

    # -- plumbing --------------------------------------------------------------------------

    def _socket(self) -> zmq.Socket[Any]:
        if self._sock is None:
            sock = self._ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if self._curve_server_key is not None and self._curve_keypair is not None:
                sock.curve_serverkey = self._curve_server_key
                sock.curve_publickey, sock.curve_secretkey = self._curve_keypair
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def close(self) -> None:
        self._reset()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def call(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Send one request and return its `result`; raise ClientError or Unreachable."""
        if self.endpoint.startswith("ipc://") and not Path(self.endpoint[6:]).exists():
            raise Unreachable(self.endpoint, "no socket file (is the daemon running?)")
        attempts = 1 + (self.retries if cmd in READONLY_COMMANDS else 0)
        wait = self.timeout if timeout is None else timeout
        for _ in range(attempts):
            reply = self._roundtrip(cmd, args, wait)
            if reply is not None:
                return self._result(reply)
            self._reset()  # a late reply must not meet the next request
        raise Unreachable(self.endpoint, f"no reply to {cmd} within {wait:g} s")

    def _roundtrip(self, cmd: str, args: dict[str, Any] | None, wait: float) -> Any:
        sock = self._socket()
        rid = next(self._ids)
        req: dict[str, Any] = {"v": VERSION, "id": rid, "cmd": cmd, "token": self.token}
        if args:
            req["args"] = args
        try:
            sock.send(msgpack.packb(req, use_bin_type=True), zmq.NOBLOCK)
        except zmq.Again:
            return None
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return None
            frames = sock.recv_multipart()
            try:
                reply = msgpack.unpackb(frames[-1], raw=False)
            except Exception:
                continue
            if isinstance(reply, dict) and reply.get("id") in (rid, None):
                return reply
            # A reply to an older request on this socket: not ours, keep waiting.

    @staticmethod
    def _result(reply: dict[str, Any]) -> Any:
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        raise ClientError(
            str(err.get("code", "internal")),
            str(err.get("message", "")),
            err.get("details") or {},
        )

    def _map(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """`call` for the commands whose result is a map."""
        result = self.call(cmd, args, timeout=timeout)
        if not isinstance(result, dict):
            raise ClientError("internal", f"{cmd}: the result is not a map")
        return result

    def _field(self, cmd: str, args: dict[str, Any] | None, key: str, kind: type[T]) -> T:
        """One entry of a map result, of the type the protocol gives it."""
        value = self._map(cmd, args)[key]
        if not isinstance(value, kind):
            raise ClientError("internal", f"{cmd}: {key} is not a {kind.__name__}")
        return value

    # -- daemon ----------------------------------------------------------------------------

    def ping(self, *, timeout: float | None = None) -> dict[str, Any]:
        return self._map("ping", timeout=timeout)

    def daemon_status(self) -> dict[str, Any]:
        return self._map("daemon.status")

    def daemon_metrics(self) -> dict[str, Any]:
        return self._map("daemon.metrics")

    def cluster_status(self) -> dict[str, Any]:
        return self._map("cluster.status")

    def cluster_drain(self, node_id: str, undo: bool = False) -> dict[str, Any]:
        return self._map("cluster.drain", {"node_id": node_id, "undo": undo})

    # -- instances -------------------------------------------------------------------------

    def instance_create(
        self,
        driver: str,
        instance_id: str | None = None,
        *,
        tenant: str | None = None,
        settings: dict[str, Any] | None = None,
    ) -> str:
        args = _drop_none(driver=driver, instance_id=instance_id, tenant=tenant, settings=settings)
        return self._field("instance.create", args, "instance_id", str)

    def instance_list(self, state: str | None = None) -> list[dict[str, Any]]:
        return self._field("instance.list", _drop_none(state=state), "instances", list)

    def instance_get(self, instance_id: str) -> dict[str, Any]:
        return self._map("instance.get", {"instance_id": instance_id})

    def instance_start(self, instance_id: str) -> str:
        return self._field("instance.start", {"instance_id": instance_id}, "state", str)

    def instance_stop(self, instance_id: str) -> str:
        return self._field("instance.stop", {"instance_id": instance_id}, "state", str)

    def instance_restart(self, instance_id: str) -> str:
        return self._field("instance.restart", {"instance_id": instance_id}, "state", str)

    def instance_logout(self, instance_id: str) -> str:
        return self._field("instance.logout", {"instance_id": instance_id}, "state", str)

    def instance_reset(self, instance_id: str) -> str:
        return self._field("instance.reset", {"instance_id": instance_id}, "state", str)

    def instance_pair(
        self, instance_id: str, phone: str | None = None, subscription_id: str | None = None
    ) -> dict[str, Any]:
        """With `subscription_id` (from `subscribe`), the codes shown later reach that stream."""
        if subscription_id is not None:
            args = _drop_none(instance_id=instance_id, phone=phone, subscription_id=subscription_id)
            return self._map("instance.pair", args)
        return self._map("instance.pair", _drop_none(instance_id=instance_id, phone=phone))

    def instance_delete(self, instance_id: str) -> dict[str, Any]:
        return self._map("instance.delete", {"instance_id": instance_id})

    # -- messages --------------------------------------------------------------------------

    def message_send(
        self,
        instance_id: str,
        to: str,
        text: str | None = None,
        media: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        ttl: float | None = None,
    ) -> dict[str, Any]:
        args = _drop_none(
            instance_id=instance_id,
            to=to,
            text=text,
            media=media,
            idempotency_key=idempotency_key,
            ttl=ttl,
        )
        return self._map("message.send", args)

    def message_get(self, message_id: str) -> dict[str, Any]:
        return self._map("message.get", {"message_id": message_id})

    def message_cancel(self, message_id: str) -> dict[str, Any]:
        return self._map("message.cancel", {"message_id": message_id})

    # -- queues ----------------------------------------------------------------------------

    def queue_status(self, instance_id: str) -> dict[str, Any]:
        return self._map("queue.status", {"instance_id": instance_id})

    def queue_list(
        self,
        instance_id: str,
        status: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        args = _drop_none(instance_id=instance_id, status=status, limit=limit, after=after)
        return self._map("queue.list", args)

    def queue_retry(self, instance_id: str, message_ids: list[str] | None = None) -> list[str]:
        args = _drop_none(instance_id=instance_id, message_ids=message_ids)
        return self._field("queue.retry", args, "retried", list)

    def queue_purge(self, instance_id: str, status: str | None = None) -> int:
        args = _drop_none(instance_id=instance_id, status=status)
        return self._field("queue.purge", args, "cancelled", int)

    # -- inbox, groups, contacts -----------------------------------------------------------

    def inbox_list(
        self, instance_id: str, after: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """Received messages, oldest first: {messages, next, last}."""
        args = _drop_none(instance_id=instance_id, after=after, limit=limit)
        return self._map("inbox.list", args)

    def message_download(self, instance_id: str, inbox_id: str) -> dict[str, Any]:
        """{inbox_id, mime, filename, size, source, data (bytes)}."""
        return self._map("message.download", {"instance_id": instance_id, "inbox_id": inbox_id})

    def group_list(self, instance_id: str) -> list[dict[str, Any]]:
        return self._field("group.list", {"instance_id": instance_id}, "groups", list)

    def contact_check(self, instance_id: str, numbers: list[str]) -> list[dict[str, Any]]:
        args = {"instance_id": instance_id, "numbers": numbers}
        return self._field("contact.check", args, "contacts", list)

    # -- simulator -------------------------------------------------------------------------

    def sim_fault(self, instance_id: str, kind: str, **params: Any) -> dict[str, Any]:
        args = _drop_none(instance_id=instance_id, kind=kind, params=params or None)
        return self._map("sim.fault", args)

    def sim_stats(self) -> dict[str, Any]:
        return self._map("sim.stats")

    # -- tokens ----------------------------------------------------------------------------

    def token_create(
        self, tenant: str, label: str | None = None, max_instances: int | None = None
    ) -> dict[str, Any]:
        args = _drop_none(tenant=tenant, label=label, max_instances=max_instances)
        return self._map("token.create", args)

    def token_list(self) -> list[dict[str, Any]]:
        return self._field("token.list", None, "tokens", list)

    def token_revoke(self, token_id: str) -> dict[str, Any]:
        return self._map("token.revoke", {"token_id": token_id})

    def token_rotate_admin(self) -> dict[str, Any]:
        """A new admin token (also written to the daemon's admin.token); the old one is refused
        from the next request on, so this client's token must be replaced after it."""
        return self._map("token.rotate_admin")

    # -- events --------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str] = ("",)) -> Subscription:
        """An event stream of what this token may see (events.subscribe), on a connection of
        its own; iterate it or call `recv()`. It renews itself while you read."""
        return Subscription(self, list(topics))


class Subscription:
    """events.subscribe on a DEALER of its own: `recv()` gives (topic, body) or None.

    Renews the subscription (events.renew) every third of its ttl while the caller reads; a
    caller that stops reading lets it expire in the daemon."""

    def __init__(self, client: Client, topics: list[str]) -> None:
        self._client = Client(
            client.endpoint,
            client.token,
            client.timeout,
            retries=0,
            curve_server_key=client._curve_server_key,
            curve_keypair=client._curve_keypair,
        )
        self._pending: list[tuple[str, dict[str, Any]]] = []
        result = self._call("events.subscribe", {"topics": topics})
        self.id: str = str(result["subscription_id"])
        self.ttl = float(result.get("ttl", 30.0))
        self._renew_at = time.monotonic() + self.ttl / 3

    def _call(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """A request on the stream's socket; events arriving meanwhile are kept for recv."""
        c = self._client
        if c.endpoint.startswith("ipc://") and not Path(c.endpoint[6:]).exists():
            raise Unreachable(c.endpoint, "no socket file (is the daemon running?)")
        sock = c._socket()
        rid = next(c._ids)
        req = {"v": VERSION, "id": rid, "cmd": cmd, "token": c.token, "args": args}
        sock.send(msgpack.packb(req, use_bin_type=True))
        deadline = time.monotonic() + c.timeout
        while (left := deadline - time.monotonic()) > 0:
            if not sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                break
            reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
            if not isinstance(reply, dict):
                continue
            if "event" in reply:
                self._keep(reply)
            elif reply.get("id") == rid:
                result = Client._result(reply)
                if not isinstance(result, dict):
                    raise ClientError("internal", f"{cmd}: the result is not a map")
                return result
        raise Unreachable(c.endpoint, f"no reply to {cmd} within {c.timeout:g} s")

    def _keep(self, reply: dict[str, Any]) -> None:
        ev = reply["event"]
        if isinstance(ev, dict) and ev.get("subscription_id") == getattr(self, "id", None):
            self._pending.append((str(ev.get("topic", "")), dict(ev.get("body") or {})))

    def recv(self, timeout: float = 1.0) -> tuple[str, dict[str, Any]] | None:
        """The next event, or None after `timeout` s; renews on the way, however long it waits."""
        sock = self._client._socket()
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() >= self._renew_at:
                self._call("events.renew", {"subscription_id": self.id})
                self._renew_at = time.monotonic() + self.ttl / 3
            if self._pending:
                return self._pending.pop(0)
            now = time.monotonic()
            if now > deadline:
                return None
            wait = min(deadline, self._renew_at) - now
            if not sock.poll(max(0, int(wait * 1000)), zmq.POLLIN):
                continue
            try:
                reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
            except Exception:
                continue
            if isinstance(reply, dict) and "event" in reply:
                self._keep(reply)

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            ev = self.recv(1.0)
            if ev is not None:
                yield ev

    def close(self) -> None:
        try:
            self._call("events.unsubscribe", {"subscription_id": self.id})
        except (ClientError, Unreachable):
            pass  # it expires on its own
        finally:
            self._client.close()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventStream:
    """The daemon's PUB socket (local admin tools, no secrets on it): `recv()` gives (topic,
    body) or None on timeout."""

    def __init__(self, endpoint: str, topics: Iterable[str] = ("",)) -> None:
        self.endpoint = endpoint
        self._sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        for topic in topics:
            self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
        self._sock.connect(endpoint)

    def recv(self, timeout: float = 1.0) -> tuple[str, dict[str, Any]] | None:
        if not self._sock.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        topic, body = self._sock.recv_multipart()[:2]
        return topic.decode("utf-8", "replace"), msgpack.unpackb(body, raw=False)

    def close(self) -> None:
        self._sock.close(linger=0)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
