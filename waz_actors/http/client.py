"""An asyncio client of the control socket: one DEALER, many requests in flight, matched by id.

HTTP handlers run concurrently on one event loop; each `call` sends its request and awaits a
Future that the single reader task resolves when the reply with that id arrives. Replies that
come after their caller gave up (timeout) find no Future and are dropped, so a late reply can
never answer a later request. The request codec is control/protocol.py's.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import zmq
import zmq.asyncio

from waz_actors.control.protocol import encode_request, unpack
from waz_actors.errors import WazError


class DaemonError(Exception):
    """The daemon answered with an error: `code` is the protocol code."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class DaemonUnreachable(Exception):
    """No reply in time: the daemon is down, restarting, or the endpoint is wrong."""


class AsyncControlClient:
    def __init__(
        self,
        endpoint: str,
        timeout: float = 10.0,
        *,
        curve_server_key: bytes | None = None,
        curve_keypair: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._ctx = zmq.asyncio.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        # Requests queue in libzmq while the daemon restarts; bounded so a long outage turns
        # into prompt 503s (send raises Again) instead of a growing backlog.
        self._sock.setsockopt(zmq.SNDHWM, 10_000)
        if curve_server_key is not None and curve_keypair is not None:
            self._sock.curve_serverkey = curve_server_key
            self._sock.curve_publickey, self._sock.curve_secretkey = curve_keypair
        self._sock.connect(endpoint)
        self._plain: zmq.Socket[bytes] = zmq.Socket.shadow(self._sock.underlying)  # no Futures
        # Ids unique across gateway restarts too, so a reply to a dead gateway's request that
        # reaches a new socket (it cannot: ROUTER routes by connection) would still not match.
        self._prefix = f"g{os.getpid()}-"
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
            self._reader = None
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(DaemonUnreachable("gateway stopping"))
        self._pending.clear()
        self._sock.close(linger=0)
        self._ctx.term()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def _read(self) -> None:
        # Wait with the asyncio socket, then take every reply that is there with the plain
        # (shadow) socket: one wake-up per batch instead of a Future per reply, which under
        # load halves the gateway's CPU per request.
        while True:
            frames = await self._sock.recv_multipart()
            self._deliver(frames[-1])
            while True:
                try:
                    frames = self._plain.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self._deliver(frames[-1])

    def _deliver(self, frame: bytes) -> None:
        try:
            reply = unpack(frame)
        except WazError:
            return  # not ours to answer; the caller times out
        if not isinstance(reply, dict):
            return
        fut = self._pending.pop(str(reply.get("id")), None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    @staticmethod
    def _expire(fut: asyncio.Future[dict[str, Any]], message: str) -> None:
        if not fut.done():
            fut.set_exception(DaemonUnreachable(message))

    async def call(
        self,
        cmd: str,
        args: dict[str, Any] | None,
        token: str | None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """The command's result, or DaemonError / DaemonUnreachable."""
        self.start()
        rid = f"{self._prefix}{next(self._ids)}"
        try:
            frame = encode_request(rid, cmd, token, args)
        except (OverflowError, ValueError, TypeError) as e:
            # JSON allows what msgpack cannot carry (integers beyond 64 bits, nesting past
            # msgpack's limit): the caller's input, so a bad_request like the daemon's own.
            raise DaemonError("bad_request", f"an argument cannot be encoded: {e}", {}) from None
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[rid] = fut
        # A timer instead of asyncio.wait_for, which costs a Task per request on 3.11.
        timer = loop.call_later(
            self.timeout if timeout is None else timeout,
            self._expire, fut, f"no reply to {cmd} from {self.endpoint}",
        )  # fmt: skip
        try:
            try:
                # Through the asyncio socket: it re-checks the edge-triggered ZMQ_FD after the
                # send, which a send on the plain socket would leave unseen (a stalled reader).
                await self._sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                raise DaemonUnreachable("the daemon is not accepting requests") from None
            reply = await fut
        finally:
            timer.cancel()
            self._pending.pop(rid, None)
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        details = err.get("details")
        raise DaemonError(
            str(err.get("code", "internal")),
            str(err.get("message", "")),
            details if isinstance(details, dict) else {},
        )
