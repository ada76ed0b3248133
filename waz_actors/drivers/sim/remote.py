"""A daemon's client of a sim server (`server.py`): the interface of `SimNetwork`, remotely.

One DEALER socket, owned by one I/O thread; other threads hand it frames and callbacks through a
mailbox. Events of a session reach its sink on that thread. Heartbeats tell the server this
daemon is alive (see `server.py` on dead daemons).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import zmq
from loguru import logger

from waz_actors.clock import Clock, RealClock
from waz_actors.drivers.base import DriverEvent, OutgoingMessage, Sink
from waz_actors.drivers.sim.checks import check_instance_id, check_message, check_phone
from waz_actors.drivers.sim.faults import validate_fault
from waz_actors.drivers.sim.mailbox import Mailbox
from waz_actors.drivers.sim.model import FINAL_EVENTS
from waz_actors.drivers.sim.server import HOST
from waz_actors.drivers.sim.wire import decode_event, encode_message, pack, unpack

DEFAULT_HEARTBEAT = 0.25  # real seconds between client heartbeats


class _Pending:
    """A request waiting for its reply."""

    def __init__(self) -> None:
        self.answered = threading.Event()
        self.reply: dict[str, Any] = {}


class RemoteSimSession:
    def __init__(self, network: RemoteSimNetwork, sid: str, instance_id: str, sink: Sink) -> None:
        self._network = network
        self.sid = sid
        self.instance_id = instance_id
        self._sink = sink
        self._emit_lock = threading.RLock()
        self._open = True

    def send(self, message: OutgoingMessage) -> None:
        check_message(message)
        self._network._tell({"op": "send", "sid": self.sid, "message": encode_message(message)})

    def logout(self) -> None:
        self._network._tell({"op": "logout", "sid": self.sid})

    def request_pair_code(self, phone: str) -> None:
        check_phone(phone)
        self._network._tell({"op": "pair_code", "sid": self.sid, "phone": phone})

    def close(self) -> None:
        with self._emit_lock:
            was_open, self._open = self._open, False
        self._network._forget(self.sid)
        if was_open:
            try:
                self._network._tell({"op": "close", "sid": self.sid})
            except RuntimeError:
                pass  # the network is closed: so is the server side of this session for us

    def deliver(self, event: DriverEvent) -> None:
        with self._emit_lock:
            if not self._open:
                return
            if isinstance(event, FINAL_EVENTS):
                self._open = False
                self._network._forget(self.sid)
            try:
                self._sink(event)
            except Exception:
                logger.exception("sim sink failed on {}", type(event).__name__)


class RemoteSimNetwork:
    """A daemon's view of a SimServer: one DEALER socket, driven by one I/O thread."""

    # The shared server's network deduplicates resends (its default; not asked over the wire).
    dedup_resends = True

    def __init__(
        self,
        endpoint: str,
        *,
        clock: Clock | None = None,
        heartbeat: float = DEFAULT_HEARTBEAT,
        request_timeout: float = 5.0,
    ) -> None:
        if heartbeat <= 0 or request_timeout <= 0:
            raise ValueError("heartbeat and request_timeout must be > 0")
        self.endpoint = endpoint
        self.clock = clock if clock is not None else RealClock()
        self.heartbeat = heartbeat
        self.request_timeout = request_timeout
        self._ctx = zmq.Context()
        self._dealer = self._ctx.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.LINGER, 0)
        self._dealer.setsockopt(zmq.SNDHWM, 0)  # never drop or block: see SimServer.start
        self._dealer.setsockopt(zmq.RCVHWM, 0)
        try:
            self._dealer.connect(endpoint)
        except zmq.ZMQError as exc:
            self._dealer.close()
            self._ctx.term()
            raise ValueError(f"bad sim server endpoint {endpoint!r}: {exc}") from exc
        # Outgoing frames (bytes) and local callbacks (post) for the I/O thread, in order.
        self._mailbox: Mailbox[bytes | Callable[[], None]] = Mailbox(self._ctx)
        self._sessions: dict[str, RemoteSimSession] = {}
        self._sessions_lock = threading.Lock()
        self._rids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}  # by rid
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._hello = {"pid": os.getpid(), "host": HOST}
        self._mailbox.put(pack({"op": "hello", **self._hello}))
        self._thread = threading.Thread(target=self._run, name="sim-client", daemon=True)
        self._thread.start()

    # --- the network interface of SimNetwork -------------------------------------------------

    def open_session(self, instance_id: str, sink: Sink) -> RemoteSimSession:
        check_instance_id(instance_id)
        if not callable(sink):
            raise TypeError("sink must be callable")
        session = self._register(instance_id, sink)
        self._tell({"op": "open", "sid": session.sid, "instance_id": instance_id})
        return session

    def logout(self, instance_id: str, sink: Sink) -> None:
        check_instance_id(instance_id)
        session = self._register(instance_id, sink)
        self._tell({"op": "logout_offline", "sid": session.sid, "instance_id": instance_id})

    def post(self, fn: Callable[[], None]) -> None:
        self._enqueue(fn)

    def inject(self, instance_id: str, kind: str, **params: Any) -> None:
        check_instance_id(instance_id)
        validate_fault(kind, params)  # a clear error without a round trip
        self._call("inject", instance_id=instance_id, kind=kind, params=params)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._call("stats")
        return stats

    def delivered_ids(self, instance_id: str) -> list[str]:
        ids: list[str] = self._call("delivered_ids", instance_id=instance_id)
        return ids

    def delivered_log(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = self._call("delivered_log")
        return log

    def complete_pairing(self, instance_id: str) -> None:
        self._call("complete_pairing", instance_id=instance_id)

    def ping(self) -> bool:
        return bool(self._call("ping")["pong"])

    def close(self, *, bye: bool = True) -> None:
        """Stop the I/O thread. `bye=False` leaves like a killed process (tests)."""
        if self._closed:
            return
        self._closed = True
        if bye:
            self._mailbox.put(pack({"op": "bye"}))
        self._stop.set()
        self._mailbox.wake()
        self._thread.join(timeout=5)
        self._mailbox.close()
        self._dealer.close(linger=0)
        self._ctx.term()

    # --- internals ----------------------------------------------------------------------------

    def _register(self, instance_id: str, sink: Sink) -> RemoteSimSession:
        session = RemoteSimSession(self, uuid.uuid4().hex, instance_id, sink)
        with self._sessions_lock:
            self._sessions[session.sid] = session
        return session

    def _forget(self, sid: str) -> None:
        with self._sessions_lock:
            self._sessions.pop(sid, None)

    def _tell(self, body: Mapping[str, Any]) -> None:
        self._enqueue(pack(body))

    def _enqueue(self, item: bytes | Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError("remote sim network is closed")
        self._mailbox.put(item)

    def _call(self, op: str, **args: Any) -> Any:
        rid = next(self._rids)
        slot = _Pending()
        with self._pending_lock:
            self._pending[rid] = slot
        try:
            self._tell({"op": op, "rid": rid, **args})
            if not slot.answered.wait(self.request_timeout):
                raise TimeoutError(
                    f"sim server {self.endpoint} did not answer {op} in {self.request_timeout}s"
                )
        finally:
            with self._pending_lock:
                self._pending.pop(rid, None)
        reply = slot.reply
        if not reply.get("ok"):
            raise ValueError(str(reply.get("error", "sim server error")))
        return reply.get("result")

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self._mailbox.socket, zmq.POLLIN)
        hb = pack({"op": "hb", **self._hello})
        last_sent = 0.0
        while True:
            ready = dict(poller.poll(int(self.heartbeat * 1000)))
            for item in self._mailbox.drain():
                if isinstance(item, bytes):
                    self._dealer.send(item)
                    last_sent = time.monotonic()
                else:
                    _run_safely(item)
            if self._stop.is_set():
                return
            if time.monotonic() - last_sent >= self.heartbeat:
                self._dealer.send(hb)
                last_sent = time.monotonic()
            if self._dealer in ready:
                while self._dealer.poll(0):
                    self._on_frame(self._dealer.recv())

    def _on_frame(self, payload: bytes) -> None:
        try:
            body = unpack(payload)
            if body["op"] == "reply":
                with self._pending_lock:
                    slot = self._pending.get(body["rid"])
                if slot is not None:
                    slot.reply = body
                    slot.answered.set()
            elif body["op"] == "event":
                with self._sessions_lock:
                    session = self._sessions.get(body["sid"])
                if session is not None:
                    session.deliver(decode_event(body["event"], self.clock.now()))
        except Exception:
            logger.exception("sim client: bad frame from {}", self.endpoint)


def _run_safely(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        logger.exception("sim client: posted callback failed")
