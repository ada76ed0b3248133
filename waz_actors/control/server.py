"""The control server: one thread owns every ZeroMQ socket (ROUTER, PUB, the wake-up PULL).

The loop never waits on an actor or an fsync. Inline commands (status board and store reads)
are answered on the spot; blocking commands run on a small pool; `message.send` returns the
store's group-commit future. Completions from other threads land in a deque and wake the loop
through an inproc socket, and the loop sends the reply: ZeroMQ sockets are not thread-safe.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import zmq

from waz_actors.config import Config
from waz_actors.control import protocol
from waz_actors.control.auth import Auth
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import Later, ProtocolError, Registry, Request
from waz_actors.errors import (
    Busy,
    ConfigError,
    Internal,
    ShuttingDown,
    Unauthorized,
    WazError,
)
from waz_actors.events import EventBus

RECV_BATCH = 256  # requests taken per wake-up before replies and events get their turn
EVENT_QUEUE_MAX = 100_000  # events waiting for the PUB socket; beyond this they are dropped
POOL_SIZE = 8
# Plain ints: zmq's flags are IntFlag members, and combining them per frame (as send_multipart
# does) goes through enum arithmetic, measurable on the request path.
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)

Envelope = list[bytes]


def is_loopback(endpoint: str) -> bool:
    """True for ipc/inproc and tcp endpoints bound to a loopback address."""
    if not endpoint.startswith("tcp://"):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a hostname: may be reachable from outside


def _ipc_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("ipc://") :]) if endpoint.startswith("ipc://") else None


def _pack_event(body: Mapping[str, Any]) -> bytes:
    # Event bodies come from many publishers; anything odd (an enum, a dataclass) becomes text
    # rather than an exception on the socket thread.
    return msgpack.packb(dict(body), use_bin_type=True, default=str)


class ControlServer:
    def __init__(
        self,
        config: Config,
        fleet: Any,
        store: Any,
        bus: EventBus | None,
        *,
        auth: Auth | None = None,
        registry: Registry | None = None,
    ) -> None:
        if registry is None:
            from waz_actors.control.commands import REGISTRY

            registry = REGISTRY
        self.config = config
        self.fleet = fleet
        self.store = store
        self.bus = bus
        self.auth = auth or Auth(store, config.state_dir)
        self.registry = registry
        self.endpoints: list[str] = []
        self.events_endpoint = config.events_endpoint
        self._max_size = config.control.max_message_size
        self._max_inflight = config.control.max_inflight
        self._ctx: zmq.Context[Any] | None = None
        self._authenticator: Any = None
        self._routers: list[zmq.Socket[Any]] = []
        self._pub: zmq.Socket[Any] | None = None
        self._wake_pull: zmq.Socket[Any] | None = None
        self._wake_push: zmq.Socket[Any] | None = None
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._done: deque[tuple[zmq.Socket[Any], Envelope, bytes]] = deque()
        self._events: deque[tuple[str, Mapping[str, Any]]] = deque()
        self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="waz-control")
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = False
        self._accepting = False
        self._inflight = 0
        self._inflight_cv = threading.Condition()
        self._unsubscribe: Callable[[], None] | None = None
        self._started_at = time.monotonic()
        self._contexts: dict[Any, Context] = {}
        self._stats: dict[str, int] = {
            "received": 0,
            "replied": 0,
            "errors": 0,
            "dropped": 0,
            "send_dropped": 0,
            "busy": 0,
            "events_published": 0,
            "events_dropped": 0,
        }

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind every socket (raising ConfigError/ZMQError here, not later) and serve."""
        ctl = self.config.control
        extra = list(ctl.tcp_endpoints)
        curve = bool(ctl.curve_secret_key_file and ctl.curve_clients_dir)
        every = [self.config.control_endpoint, *extra]
        exposed = [e for e in every if not is_loopback(e)]
        if exposed and not curve:
            raise ConfigError(
                f"control.tcp_endpoints: {exposed[0]} is not on loopback; configure "
                "control.curve_secret_key_file and control.curve_clients_dir to use CURVE"
            )
        # With CURVE configured every tcp endpoint uses it (one socket, server key pair);
        # ipc stays plain: its file mode already limits it to the daemon's group.
        public = [e for e in every if curve and e.startswith("tcp://")]
        self.auth.ensure_admin_token()
        self._ctx = zmq.Context()
        try:
            self._bind_all(every, public)
        except Exception:
            self._close_sockets()
            raise
        if self.bus is not None:
            self._unsubscribe = self.bus.subscribe("", self._on_event)
        self._started_at = time.monotonic()
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="waz-control-loop", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _bind_all(self, endpoints: list[str], public: list[str]) -> None:
        assert self._ctx is not None
        local = self._router()
        self._routers.append(local)
        for ep in endpoints:
            if ep in public:
                continue
            self._bind(local, ep)
        if public:
            secure = self._router()
            self._setup_curve(secure)
            self._routers.append(secure)
            for ep in public:
                self._bind(secure, ep)
        self._pub = self._ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.setsockopt(zmq.SNDHWM, 10_000)
        self._bind(self._pub, self.events_endpoint)
        self._wake_pull = self._ctx.socket(zmq.PULL)
        wake = f"inproc://waz-control-wake-{id(self)}"
        self._wake_pull.bind(wake)
        self._wake_push = self._ctx.socket(zmq.PUSH)
        self._wake_push.setsockopt(zmq.LINGER, 0)
        self._wake_push.connect(wake)

    def _router(self) -> zmq.Socket[Any]:
        assert self._ctx is not None
        sock = self._ctx.socket(zmq.ROUTER)
        # Oversize frames make libzmq drop that peer's connection without a reply; that is the
        # only defence that works before the bytes are in memory.
        sock.setsockopt(zmq.MAXMSGSIZE, self._max_size)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.RCVHWM, 10_000)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        return sock

    def _bind(self, sock: zmq.Socket[Any], endpoint: str) -> None:
        path = _ipc_path(endpoint)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        sock.bind(endpoint)
        if path is not None:
            os.chmod(path, 0o660)  # the daemon's group may talk to it, nobody else
        if sock.type == zmq.ROUTER:
            self.endpoints.append(endpoint)

    def _setup_curve(self, sock: zmq.Socket[Any]) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        ctl = self.config.control
        public, secret = zmq.auth.load_certificate(ctl.curve_secret_key_file)
        if secret is None:
            raise ConfigError(
                f"control.curve_secret_key_file: {ctl.curve_secret_key_file} holds no secret key"
            )
        if not Path(ctl.curve_clients_dir).is_dir():
            raise ConfigError(
                f"control.curve_clients_dir: {ctl.curve_clients_dir} is not a directory"
            )
        self._authenticator = ThreadAuthenticator(self._ctx)
        self._authenticator.start()
        self._authenticator.configure_curve(domain="*", location=ctl.curve_clients_dir)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse new requests (shutting_down), finish those in flight, close the sockets."""
        deadline = time.monotonic() + timeout
        with self._inflight_cv:
            self._accepting = False
            self._inflight_cv.wait_for(
                lambda: self._inflight == 0, timeout=max(0.0, deadline - time.monotonic())
            )
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._closing = True
        self._wake()
        if self._thread is not None:
            self._thread.join(max(1.0, deadline - time.monotonic()))
            self._thread = None
        else:
            self._close_sockets()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, Any]:
        return {**self._stats, "inflight": self._inflight, "pending_events": len(self._events)}

    @property
    def accepting(self) -> bool:
        return self._accepting

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._wake_pull is not None
        poller = zmq.Poller()
        for sock in self._routers:
            poller.register(sock, zmq.POLLIN)
        poller.register(self._wake_pull, zmq.POLLIN)
        self._ready.set()
        try:
            while not self._closing:
                try:
                    ready = dict(poller.poll(1000))
                except zmq.ZMQError:  # pragma: no cover - context torn down under us
                    break
                if self._wake_pull in ready:
                    self._drain_wake()
                for sock in self._routers:
                    if sock in ready:
                        self._recv_batch(sock)
                self._flush_done()
                self._flush_events()
            self._flush_done()
            self._flush_events()
        finally:
            self._close_sockets()

    def _recv_batch(self, sock: zmq.Socket[Any]) -> None:
        for _ in range(RECV_BATCH):
            try:
                frames = sock.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            self._stats["received"] += 1
            try:
                self._on_frames(sock, frames)
            except Exception:  # never let one request stop the loop
                self._log_exception("control: unexpected error handling a request")
                self._stats["dropped"] += 1

    def _drain_wake(self) -> None:
        assert self._wake_pull is not None
        # Clear the flag before draining the deques: a completion queued after this point
        # wakes us again, one queued before it is sent by the flush that follows.
        with self._wake_lock:
            self._wake_pending = False
            while True:
                try:
                    self._wake_pull.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break

    def _wake(self) -> None:
        # Fast path without the lock: hundreds of actor threads publish events, and a contended
        # lock costs each of them a trip through the GIL. Safe: the item was queued before this
        # read, and the loop clears the flag before it drains, so it sees the item either way.
        if self._wake_pending:
            return
        with self._wake_lock:
            if self._wake_pending or self._wake_push is None:
                return
            self._wake_pending = True
            try:
                self._wake_push.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the loop polls at least once a second anyway

    # -- requests --------------------------------------------------------------------------

    def _on_frames(self, sock: zmq.Socket[Any], frames: list[bytes]) -> None:
        if len(frames) < 2:
            self._stats["dropped"] += 1  # no routing id and payload: nobody to answer
            return
        # A DEALER sends [payload]; a REQ sends ["", payload]. The envelope goes back verbatim.
        if frames[1] == b"" and len(frames) >= 3:
            envelope, body = frames[:2], frames[2:]
        else:
            envelope, body = frames[:1], frames[1:]
        if len(body) != 1:
            err = protocol.BadRequest(
                f"expected one frame after the routing envelope, got {len(body)}",
                {"field": "frame"},
            )
            self._send(sock, envelope, protocol.error_reply(None, err), error=True)
            return
        try:
            req = protocol.decode_request(body[0], self._max_size)
        except ProtocolError as e:
            self._send(sock, envelope, protocol.error_reply(e.request_id, e), error=True)
            return
        try:
            self._dispatch(sock, envelope, req)
        except WazError as e:
            self._send(sock, envelope, protocol.error_reply(req.id, e), error=True)
        except Exception:
            self._log_exception(f"control: {req.cmd} failed")
            self._send(
                sock, envelope, protocol.error_reply(req.id, Internal("internal error")), error=True
            )

    def _dispatch(self, sock: zmq.Socket[Any], envelope: Envelope, req: Request) -> None:
        if not self._accepting:
            raise ShuttingDown("the daemon is shutting down")
        cmd = self.registry.get(req.cmd)
        identity = self.auth.authenticate(req.token)
        if cmd.admin and not identity.admin:
            raise Unauthorized(f"{cmd.name} needs the admin token", {"field": "token"})
        args = cmd.parse_args(req.args)
        ctx = self._contexts.get(identity)
        if ctx is None:  # one per identity: everything else in it is the server's
            ctx = Context(
                fleet=self.fleet,
                store=self.store,
                config=self.config,
                auth=self.auth,
                identity=identity,
                started_at=self._started_at,
                server_stats=self.stats,
            )
            if len(self._contexts) < 10_000:
                self._contexts[identity] = ctx
        if cmd.readonly and not cmd.blocking:
            self._send(sock, envelope, protocol.ok_reply(req.id, cmd.handler(ctx, **args)))
            return
        # Count the request in flight *before* it can start, so stop() never misses it.
        self._begin()
        try:
            if cmd.blocking:
                result: Any = self._pool.submit(cmd.handler, ctx, **args)
            else:
                result = cmd.handler(ctx, **args)
        except BaseException:
            self._end(1)
            raise
        if isinstance(result, Later):
            self._track(sock, envelope, req.id, result.future, result.shape)
        elif isinstance(result, Future):
            self._track(sock, envelope, req.id, result)
        else:
            self._end(1)
            self._send(sock, envelope, protocol.ok_reply(req.id, result))

    def _begin(self) -> None:
        with self._inflight_cv:
            # Checked under the lock stop() takes, so a request is either refused or waited for.
            if not self._accepting:
                raise ShuttingDown("the daemon is shutting down")
            if self._inflight >= self._max_inflight:
                self._stats["busy"] += 1
                raise Busy(
                    "too many requests in flight; retry later",
                    {"inflight": self._inflight, "max_inflight": self._max_inflight},
                )
            self._inflight += 1

    def _end(self, n: int) -> None:
        with self._inflight_cv:
            self._inflight -= n
            self._inflight_cv.notify_all()

    def _track(
        self,
        sock: zmq.Socket[Any],
        envelope: Envelope,
        rid: str | int,
        fut: Future[Any],
        shape: Callable[[Any], Any] | None = None,
    ) -> None:
        def done(f: Future[Any]) -> None:
            # Runs on the thread that resolved the future (store writer, pool worker): build
            # the reply here so the loop only has to send bytes.
            try:
                result = f.result()
                reply = protocol.ok_reply(rid, result if shape is None else shape(result))
            except WazError as e:
                reply = protocol.error_reply(rid, e)
            except Exception:
                self._log_exception("control: a command failed")
                reply = protocol.error_reply(rid, Internal("internal error"))
            self._done.append((sock, envelope, reply))
            self._wake()

        fut.add_done_callback(done)

    def _flush_done(self) -> None:
        done = self._done
        n = 0
        while done:
            sock, envelope, reply = done.popleft()
            self._send(sock, envelope, reply)
            n += 1
        if n:
            self._end(n)

    def _send(
        self, sock: zmq.Socket[Any], envelope: Envelope, reply: bytes, *, error: bool = False
    ) -> None:
        if error:
            self._stats["errors"] += 1
        try:
            for frame in envelope:
                sock.send(frame, _MORE)
            sock.send(reply, _NOBLOCK)
            self._stats["replied"] += 1
        except zmq.ZMQError:
            # Peer gone or its queue full: a ROUTER cannot block for one client.
            self._stats["send_dropped"] += 1

    # -- events ----------------------------------------------------------------------------

    def _on_event(self, topic: str, body: Mapping[str, Any]) -> None:
        # Called on the publisher's thread: only enqueue, never touch a socket or block.
        if len(self._events) >= EVENT_QUEUE_MAX:
            self._stats["events_dropped"] += 1
            return
        self._events.append((topic, body))
        self._wake()

    def _flush_events(self) -> None:
        pub = self._pub
        events = self._events
        while events:
            topic, body = events.popleft()
            if pub is None:
                continue
            try:
                pub.send_multipart([topic.encode("utf-8"), _pack_event(body)], zmq.NOBLOCK)
                self._stats["events_published"] += 1
            except (zmq.ZMQError, TypeError, ValueError, UnicodeEncodeError):
                self._stats["events_dropped"] += 1

    # -- teardown --------------------------------------------------------------------------

    def _close_sockets(self) -> None:
        with self._wake_lock:
            socks = [*self._routers, self._pub, self._wake_pull, self._wake_push]
            self._wake_push = None
        for sock in socks:
            if sock is not None:
                sock.close()
        self._routers = []
        self._pub = self._wake_pull = None
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        for ep in [*self.endpoints, self.events_endpoint]:
            path = _ipc_path(ep)
            if path is not None:
                try:
                    path.unlink()
                except OSError:
                    pass

    @staticmethod
    def _log_exception(message: str) -> None:
        from loguru import logger

        logger.exception(message)
