"""The control server: one thread owns every ZeroMQ socket (ROUTER, PUB, the wake-up PULL).

The loop never waits on an actor or an fsync: it hands each request frame to the dispatcher
(control/dispatch.py), which answers at once or later. Completions from other threads land in
a deque and wake the loop through an inproc socket, and the loop sends the reply: ZeroMQ
sockets are not thread-safe. Binding and CURVE live in control/sockets.py, events in
control/publisher.py.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from waz_actors.config import Config
from waz_actors.control.auth import Auth
from waz_actors.control.dispatch import Dispatcher, log_exception
from waz_actors.control.protocol import Registry
from waz_actors.control.publisher import Publisher
from waz_actors.control.sockets import Sockets, is_loopback
from waz_actors.errors import BadRequest
from waz_actors.events import EventBus

__all__ = ["ControlServer", "is_loopback"]

RECV_BATCH = 256  # requests taken per wake-up before replies and events get their turn
# Plain ints: zmq's flags are IntFlag members, and combining them per frame (as send_multipart
# does) goes through enum arithmetic, measurable on the request path.
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)

Envelope = list[bytes]


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
        self.events_endpoint = config.events_endpoint
        self._sockets = Sockets(config, f"inproc://waz-control-wake-{id(self)}")
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._done: deque[tuple[zmq.Socket[Any], Envelope, bytes]] = deque()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._closing = False
        self._unsubscribe: Callable[[], None] | None = None
        self._next_expiry = 0.0
        self._stats: dict[str, int] = {
            "received": 0,
            "replied": 0,
            "errors": 0,
            "dropped": 0,
            "send_dropped": 0,
            "busy": 0,
            "rate_limited": 0,
            "events_published": 0,
            "events_dropped": 0,
        }
        self.dispatcher = Dispatcher(
            config,
            fleet,
            store,
            self.auth,
            registry,
            stats=self._stats,
            server_stats=self.stats,
            started_at=time.monotonic(),
        )
        self.dispatcher.deliver = self._on_done
        self.dispatcher.accepting = False  # until start()
        self.publisher = Publisher(self._stats, self._wake)

    @property
    def endpoints(self) -> list[str]:
        return self._sockets.endpoints

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind every socket (raising ConfigError/ZMQError here, not later) and serve."""
        self.auth.ensure_admin_token()
        self._sockets.open()
        streams = self.dispatcher.streams
        streams.wake = self._wake
        if self.bus is not None:
            unsubs = [
                self.bus.subscribe("", self.publisher.on_event),
                self.bus.subscribe("", streams.on_event),
                self.bus.subscribe_private(streams.on_private),
            ]

            def unsubscribe() -> None:
                for u in unsubs:
                    u()

            self._unsubscribe = unsubscribe
        self.dispatcher.started_at = time.monotonic()
        self.dispatcher.accepting = True
        self._thread = threading.Thread(target=self._run, name="waz-control-loop", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse new requests (shutting_down), finish those in flight, close the sockets."""
        deadline = time.monotonic() + timeout
        self.dispatcher.stop_accepting(deadline - time.monotonic())
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
        self.dispatcher.close()

    def stats(self) -> dict[str, Any]:
        return {
            **self._stats,
            "inflight": self.dispatcher.inflight,
            "pending_events": len(self.publisher),
            "subscriptions": len(self.dispatcher.streams),
            **self.dispatcher.streams.stats,
        }

    @property
    def accepting(self) -> bool:
        return self.dispatcher.accepting

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        socks = self._sockets
        assert socks.wake_pull is not None
        poller = zmq.Poller()
        for sock in socks.routers:
            poller.register(sock, zmq.POLLIN)
        poller.register(socks.wake_pull, zmq.POLLIN)
        self._ready.set()
        try:
            while not self._closing:
                try:
                    ready = dict(poller.poll(1000))
                except zmq.ZMQError:  # pragma: no cover - context torn down under us
                    break
                if socks.wake_pull in ready:
                    self._drain_wake()
                for sock in socks.routers:
                    if sock in ready:
                        self._recv_batch(sock)
                self._flush_done()
                self.publisher.flush(socks.pub)
                self._flush_streams()
            self._flush_done()
            self.publisher.flush(socks.pub)
        finally:
            self._close_sockets()

    def _flush_streams(self) -> None:
        streams = self.dispatcher.streams
        now = time.monotonic()
        if now >= self._next_expiry:  # at most once a second: the poll wakes us at least that
            self._next_expiry = now + 1.0
            streams.expire()
        streams.flush(self._send_event)

    def _send_event(self, sock: Any, envelope: Envelope, frame: bytes) -> None:
        # Like _send, counted apart: a peer gone or too slow loses the event, never blocks us.
        try:
            for part in envelope:
                sock.send(part, _MORE)
            sock.send(frame, _NOBLOCK)
        except zmq.ZMQError:
            self.dispatcher.streams.stats["stream_dropped"] += 1

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
                _log_exception("control: unexpected error handling a request")
                self._stats["dropped"] += 1

    def _drain_wake(self) -> None:
        pull = self._sockets.wake_pull
        assert pull is not None
        # Clear the flag before draining the deques: a completion queued after this point
        # wakes us again, one queued before it is sent by the flush that follows.
        with self._wake_lock:
            self._wake_pending = False
            while True:
                try:
                    pull.recv(_NOBLOCK)
                except zmq.Again:
                    break

    def _wake(self) -> None:
        # Fast path without the lock: hundreds of actor threads publish events, and a contended
        # lock costs each of them a trip through the GIL. Safe: the item was queued before this
        # read, and the loop clears the flag before it drains, so it sees the item either way.
        if self._wake_pending:
            return
        with self._wake_lock:
            push = self._sockets.wake_push
            if self._wake_pending or push is None:
                return
            self._wake_pending = True
            try:
                push.send(b"", _NOBLOCK)
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
            err = BadRequest(
                f"expected one frame after the routing envelope, got {len(body)}",
                {"field": "frame"},
            )
            self._send(sock, envelope, self.dispatcher.error(None, err))
            return
        reply = self.dispatcher.handle(body[0], sock, envelope)
        if reply is not None:
            self._send(sock, envelope, reply)

    def _on_done(self, sock: object, envelope: Envelope, reply: bytes) -> None:
        # A later answer, on the thread that resolved it: queue it for the loop to send.
        self._done.append((sock, envelope, reply))  # type: ignore[arg-type]
        self._wake()

    def _flush_done(self) -> None:
        done = self._done
        n = 0
        while done:
            sock, envelope, reply = done.popleft()
            self._send(sock, envelope, reply)
            n += 1
        if n:
            self.dispatcher.end(n)

    def _send(self, sock: zmq.Socket[Any], envelope: Envelope, reply: bytes) -> None:
        try:
            for frame in envelope:
                sock.send(frame, _MORE)
            sock.send(reply, _NOBLOCK)
            self._stats["replied"] += 1
        except zmq.ZMQError:
            # Peer gone or its queue full: a ROUTER cannot block for one client.
            self._stats["send_dropped"] += 1

    # -- teardown --------------------------------------------------------------------------

    def _close_sockets(self) -> None:
        # Under the lock: after this no thread can send on the wake-up socket.
        with self._wake_lock:
            push, self._sockets.wake_push = self._sockets.wake_push, None
        if push is not None:
            push.close()
        self._sockets.close()


def _log_exception(message: str) -> None:
    log_exception(message)  # limited: a client can make the same error happen in a loop
