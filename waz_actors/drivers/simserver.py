"""The fake WhatsApp network as a server, so several daemon processes share one network.

`SimServer` puts a `SimNetwork` behind a ZeroMQ ROUTER socket; `RemoteSimNetwork` is the client a
daemon uses instead of an in-process network (same `open_session` / `logout` / `post` / `inject`
/ `stats` interface). Every frame is one msgpack map with an `op`:

    client -> server   hello, hb                       {"pid", "host"}: who owns the sessions
                       open {"sid", "instance_id"}     sid: chosen by the client (uuid hex)
                       send {"sid", "message"}, logout {"sid"}, pair_code {"sid", "phone"},
                       close {"sid"}, logout_offline {"sid", "instance_id"}, bye
                       inject, stats, delivered_log, delivered_ids, complete_pairing, ping:
                       requests carrying "rid", answered by a reply
    server -> client   event {"sid", "event": {"type": <class name>, fields...}}
                       reply {"rid", "ok", "result"} or {"rid", "ok": false, "error"}

Dead daemons. A daemon killed with -9 leaves its sessions open on the server, as WhatsApp keeps a
killed client's session until a new one replaces it. Replacing a session counts as a conflict
caused by us only while its owner is alive: the owner sent anything (heartbeats every
`heartbeat` seconds) within `session_ttl` real seconds, and, when it runs on this host, its pid
still exists (so a kill -9 is seen at once, not after the ttl). Otherwise the replacement counts
as `stale_replaced`. A client that closes cleanly says `bye`, which ends its ownership at once.

Time. `Banned.until` is daemon-clock time, and the two processes have different clocks: the
server sends the remaining ban time and the client adds it to its own clock. The server's
time_scale must match the daemons' for latencies and bans to mean the same.
"""

from __future__ import annotations

import argparse
import itertools
import os
import queue
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import msgpack
import zmq
from loguru import logger

from waz_actors.clock import Clock, RealClock, Scheduler
from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    DriverEvent,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    Receipt,
    SendResult,
    Sink,
)
from waz_actors.drivers.simnet import (
    FaultSchedule,
    SimNetwork,
    SimSession,
    check_message,
    check_phone,
    parse_fault_rates,
    validate_fault,
)

DEFAULT_SESSION_TTL = 2.0  # real seconds without a word from a daemon before it counts as dead
DEFAULT_HEARTBEAT = 0.25  # real seconds between client heartbeats

_EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Connected,
        Disconnected,
        Conflict,
        LoggedOut,
        QrCode,
        PairCode,
        Paired,
        Banned,
        SendResult,
        Receipt,
        DriverAlarm,
    )
}
_FINAL = (Conflict, Disconnected, LoggedOut, Banned)


def encode_event(event: DriverEvent, now: float) -> dict[str, Any]:
    body = asdict(event)
    if isinstance(event, Banned):
        body["remaining"] = max(0.0, event.until - now)
        del body["until"]
    if isinstance(event, DriverAlarm):
        body["details"] = dict(event.details)
    return {"type": type(event).__name__, **body}


def decode_event(body: Mapping[str, Any], now: float) -> DriverEvent:
    fields = dict(body)
    cls = _EVENT_TYPES.get(fields.pop("type", None))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type in {body!r}")
    if cls is Banned:
        fields["until"] = now + float(fields.pop("remaining"))
    return cls(**fields)  # type: ignore[no-any-return]


def _pack(body: Mapping[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


_HOST = socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Mailbox:
    """Items for an I/O thread from any thread: a queue, plus an inproc wake-up socket.

    ZeroMQ sockets belong to one thread, so other threads never touch the I/O socket; they queue
    the item and, unless a wake-up is already on its way, poke the I/O thread's poller.
    """

    def __init__(self, ctx: zmq.Context) -> None:
        addr = f"inproc://sim-mailbox-{uuid.uuid4().hex}"
        self.socket = ctx.socket(zmq.PULL)  # registered in the I/O thread's poller
        self.socket.bind(addr)
        self._tx = ctx.socket(zmq.PUSH)
        self._tx.setsockopt(zmq.LINGER, 0)
        self._tx.connect(addr)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._woken = False
        self._closed = False

    def put(self, item: Any) -> None:
        self._queue.put(item)
        self.wake()

    def wake(self) -> None:
        with self._lock:
            if self._woken or self._closed:
                return
            self._woken = True
            try:
                self._tx.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                self._woken = False

    def drain(self) -> list[Any]:
        """I/O thread only: everything queued so far, in order."""
        while self.socket.poll(0):
            self.socket.recv()
        with self._lock:
            self._woken = False  # items queued from now on send a new wake-up
        items = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._tx.close(linger=0)
        self.socket.close(linger=0)


# --- server -----------------------------------------------------------------------------------


class _Owner:
    """A daemon connection, known by its ROUTER identity."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.last_seen = time.monotonic()
        self.pid: int | None = None
        self.host: str | None = None
        self.gone = False

    def alive(self) -> bool:
        if self.gone or time.monotonic() - self.last_seen > self.ttl:
            return False
        if self.pid is not None and self.host == _HOST:
            return _pid_alive(self.pid)
        return True


class SimServer:
    """Serves a SimNetwork on `endpoint` (tcp://127.0.0.1:* picks a free port) from one thread."""

    def __init__(
        self, endpoint: str, network: SimNetwork, *, session_ttl: float = DEFAULT_SESSION_TTL
    ) -> None:
        if session_ttl <= 0:
            raise ValueError("session_ttl must be > 0")
        self.network = network
        self.session_ttl = session_ttl
        self.bad_requests = 0
        self._endpoint = endpoint
        self._ctx = zmq.Context()
        self._router: zmq.Socket | None = None
        self._mailbox: _Mailbox | None = None  # (identity, frame) pairs to send
        self._owners: dict[bytes, _Owner] = {}
        self._sessions: dict[str, tuple[bytes, SimSession]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.endpoint = endpoint

    def start(self) -> None:
        router = self._ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        # No high-water mark: a ROUTER silently drops frames past it, and a lost SendResult
        # would look like a network fault the simulator never injected.
        router.setsockopt(zmq.SNDHWM, 0)
        router.setsockopt(zmq.RCVHWM, 0)
        try:
            router.bind(self._endpoint)
        except zmq.ZMQError as exc:
            router.close()
            self._ctx.term()
            raise OSError(f"sim server cannot bind {self._endpoint}: {exc}") from exc
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._router = router
        self._mailbox = _Mailbox(self._ctx)
        self._thread = threading.Thread(target=self._run, name="sim-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._mailbox is not None:
            self._mailbox.wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._mailbox is not None:
            self._mailbox.close()
        if self._router is not None:
            self._router.close(linger=0)
        self._ctx.term()

    def live_owners(self) -> int:
        """Daemon connections currently counted alive (a diagnostic for tests and stats)."""
        return sum(1 for owner in list(self._owners.values()) if owner.alive())

    # --- I/O thread -------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._router is not None and self._mailbox is not None
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._mailbox.socket, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(500))
            for identity, payload in self._mailbox.drain():
                self._router.send_multipart([identity, payload])
            if self._router in ready:
                while self._router.poll(0):
                    frames = self._router.recv_multipart()
                    try:
                        self._handle(frames)
                    except Exception:
                        self.bad_requests += 1
                        logger.exception("sim server: request failed")

    def _push(self, identity: bytes, body: Mapping[str, Any]) -> None:
        """Queue a frame for a client; any thread."""
        if self._mailbox is not None:
            self._mailbox.put((identity, _pack(body)))

    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self.bad_requests += 1
            return
        identity, payload = frames
        try:
            body = msgpack.unpackb(payload, raw=False)
        except Exception:
            self.bad_requests += 1
            return
        if not isinstance(body, dict) or not isinstance(body.get("op"), str):
            self.bad_requests += 1
            return
        owner = self._owners.get(identity)
        if owner is None:
            owner = self._owners[identity] = _Owner(self.session_ttl)
        owner.last_seen = time.monotonic()
        owner.gone = False
        op = body["op"]
        if "rid" in body:
            self._answer(identity, body)
            return
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            self.bad_requests += 1
            logger.warning("sim server: unknown op {!r}", op)
            return
        try:
            handler(identity, owner, body)
        except (KeyError, TypeError, ValueError) as exc:
            self.bad_requests += 1
            logger.warning("sim server: bad {} request: {}", op, exc)

    def _answer(self, identity: bytes, body: dict[str, Any]) -> None:
        rid = body["rid"]
        try:
            result = self._request(body)
        except (KeyError, TypeError, ValueError) as exc:
            text = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            self._push(identity, {"op": "reply", "rid": rid, "ok": False, "error": text})
            return
        self._push(identity, {"op": "reply", "rid": rid, "ok": True, "result": result})

    def _request(self, body: dict[str, Any]) -> Any:
        op = body["op"]
        net = self.network
        if op == "ping":
            return {"pong": True}
        if op == "stats":
            stats = net.stats()
            stats["server"] = {"live_owners": self.live_owners(), "bad_requests": self.bad_requests}
            return stats
        if op == "delivered_log":
            return net.delivered_log()
        if op == "delivered_ids":
            return net.delivered_ids(body["instance_id"])
        if op == "complete_pairing":
            net.complete_pairing(body["instance_id"])
            return None
        if op == "inject":
            params = body.get("params") or {}
            if not isinstance(params, dict):
                raise ValueError("params must be a map")
            net.inject(body["instance_id"], body["kind"], **params)
            return None
        raise ValueError(f"unknown request {op!r}")

    def _op_hello(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        pid, host = body.get("pid"), body.get("host")
        owner.pid = pid if isinstance(pid, int) else None
        owner.host = host if isinstance(host, str) else None

    _op_hb = _op_hello

    def _op_bye(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        owner.gone = True

    def _op_open(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        sid = body["sid"]
        if not isinstance(sid, str) or sid in self._sessions:
            raise ValueError(f"bad or reused sid {sid!r}")
        session = self.network.open_session(
            body["instance_id"], self._session_sink(identity, sid), owner=owner
        )
        self._sessions[sid] = (identity, session)

    def _op_logout_offline(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        self.network.logout(body["instance_id"], self._session_sink(identity, body["sid"]))

    def _op_send(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        m = body["message"]
        message = OutgoingMessage(m["message_id"], m["to"], m.get("text"), m.get("media"))
        entry = self._sessions.get(body["sid"])
        if entry is None:
            # The session is gone (the server restarted, or it already ended): refuse the send
            # and tell the daemon its connection is gone, or it would wait online forever.
            result = SendResult(message.message_id, ok=False, error="not connected")
            gone = Disconnected(code=None, reason="session unknown to the sim server")
            self._push(identity, self._event_frame(body["sid"], result))
            self._push(identity, self._event_frame(body["sid"], gone))
            return
        entry[1].send(message)

    def _op_logout(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        entry = self._sessions.get(body["sid"])
        if entry is not None:
            entry[1].logout()

    def _op_pair_code(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        entry = self._sessions.get(body["sid"])
        if entry is not None:
            entry[1].request_pair_code(body["phone"])

    def _op_close(self, identity: bytes, owner: _Owner, body: dict[str, Any]) -> None:
        entry = self._sessions.pop(body["sid"], None)
        if entry is not None:
            entry[1].close()

    def _session_sink(self, identity: bytes, sid: str) -> Sink:
        def sink(event: DriverEvent) -> None:
            if isinstance(event, _FINAL):
                self._sessions.pop(sid, None)
            self._push(identity, self._event_frame(sid, event))

        return sink

    def _event_frame(self, sid: str, event: DriverEvent) -> dict[str, Any]:
        return {"op": "event", "sid": sid, "event": encode_event(event, self.network.clock.now())}


# --- client -----------------------------------------------------------------------------------


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
        body = {
            "message_id": message.message_id,
            "to": message.to,
            "text": message.text,
            "media": dict(message.media) if message.media is not None else None,
        }
        self._network._tell({"op": "send", "sid": self.sid, "message": body})

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

    def _deliver(self, event: DriverEvent) -> None:
        with self._emit_lock:
            if not self._open:
                return
            if isinstance(event, _FINAL):
                self._open = False
                self._network._forget(self.sid)
            try:
                self._sink(event)
            except Exception:
                logger.exception("sim sink failed on {}", type(event).__name__)


class RemoteSimNetwork:
    """A daemon's view of a SimServer: one DEALER socket, driven by one I/O thread."""

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
        self._mailbox = _Mailbox(self._ctx)
        self._sessions: dict[str, RemoteSimSession] = {}
        self._sessions_lock = threading.Lock()
        self._rids = itertools.count(1)
        self._pending: dict[int, list[Any]] = {}  # rid -> [Event, reply]
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._hello = {"pid": os.getpid(), "host": _HOST}
        self._mailbox.put(_pack({"op": "hello", **self._hello}))
        self._thread = threading.Thread(target=self._run, name="sim-client", daemon=True)
        self._thread.start()

    # --- the network interface of SimNetwork -------------------------------------------------

    def open_session(self, instance_id: str, sink: Sink) -> RemoteSimSession:
        _check_id(instance_id)
        if not callable(sink):
            raise TypeError("sink must be callable")
        session = self._register(instance_id, sink)
        self._tell({"op": "open", "sid": session.sid, "instance_id": instance_id})
        return session

    def logout(self, instance_id: str, sink: Sink) -> None:
        _check_id(instance_id)
        session = self._register(instance_id, sink)
        self._tell({"op": "logout_offline", "sid": session.sid, "instance_id": instance_id})

    def post(self, fn: Callable[[], None]) -> None:
        self._enqueue(fn)

    def inject(self, instance_id: str, kind: str, **params: Any) -> None:
        _check_id(instance_id)
        validate_fault(kind, params)  # a clear error without a round trip
        self._call("inject", instance_id=instance_id, kind=kind, params=params)

    def stats(self) -> dict[str, Any]:
        return self._call("stats")  # type: ignore[no-any-return]

    def delivered_ids(self, instance_id: str) -> list[str]:
        return self._call("delivered_ids", instance_id=instance_id)  # type: ignore[no-any-return]

    def delivered_log(self) -> list[dict[str, Any]]:
        return self._call("delivered_log")  # type: ignore[no-any-return]

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
            self._mailbox.put(_pack({"op": "bye"}))
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
        self._enqueue(_pack(body))

    def _enqueue(self, item: bytes | Callable[[], None]) -> None:
        if self._closed:
            raise RuntimeError("remote sim network is closed")
        self._mailbox.put(item)

    def _call(self, op: str, **args: Any) -> Any:
        rid = next(self._rids)
        slot: list[Any] = [threading.Event(), None]
        with self._pending_lock:
            self._pending[rid] = slot
        try:
            self._tell({"op": op, "rid": rid, **args})
            if not slot[0].wait(self.request_timeout):
                raise TimeoutError(
                    f"sim server {self.endpoint} did not answer {op} in {self.request_timeout}s"
                )
        finally:
            with self._pending_lock:
                self._pending.pop(rid, None)
        reply = slot[1]
        if not reply.get("ok"):
            raise ValueError(str(reply.get("error", "sim server error")))
        return reply.get("result")

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._dealer, zmq.POLLIN)
        poller.register(self._mailbox.socket, zmq.POLLIN)
        hb = _pack({"op": "hb", **self._hello})
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
            body = msgpack.unpackb(payload, raw=False)
            if body["op"] == "reply":
                with self._pending_lock:
                    slot = self._pending.get(body["rid"])
                if slot is not None:
                    slot[1] = body
                    slot[0].set()
            elif body["op"] == "event":
                with self._sessions_lock:
                    session = self._sessions.get(body["sid"])
                if session is not None:
                    session._deliver(decode_event(body["event"], self.clock.now()))
        except Exception:
            logger.exception("sim client: bad frame from {}", self.endpoint)


def _check_id(instance_id: str) -> None:
    if not isinstance(instance_id, str) or not instance_id:
        raise ValueError("instance_id must be a non-empty string")


def _run_safely(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        logger.exception("sim client: posted callback failed")


# --- process entry point ----------------------------------------------------------------------


def serve(
    endpoint: str,
    time_scale: float = 1.0,
    faults: str | Mapping[str, float] | None = None,
    *,
    session_ttl: float = DEFAULT_SESSION_TTL,
    seed: int | None = None,
    connect_latency: float = 0.5,
    send_latency: float = 0.2,
    ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run a sim server until SIGINT/SIGTERM (or `stop` is set). Bad arguments: ValueError."""
    rates = parse_fault_rates(faults) if isinstance(faults, str) else dict(faults or {})
    clock = RealClock(time_scale=time_scale)
    schedule = FaultSchedule(rates, random.Random(seed)) if rates else None
    scheduler = Scheduler(clock)
    network = SimNetwork(
        scheduler,
        clock,
        connect_latency=connect_latency,
        send_latency=send_latency,
        rand=random.Random(seed),
    )
    server = SimServer(endpoint, network, session_ttl=session_ttl)
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    scheduler.start()
    try:
        server.start()
        if schedule is not None:
            schedule.start(network)
        (ready or _announce)(server.endpoint)
        stop.wait()
    finally:
        if schedule is not None:
            schedule.stop()
        if server._thread is not None:
            server.stop()
        scheduler.stop()


def _announce(endpoint: str) -> None:
    print(f"sim server listening on {endpoint}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m waz_actors.drivers.simserver",
        description="A fake WhatsApp network shared by several waz-actors daemons.",
    )
    parser.add_argument("--endpoint", required=True, help="e.g. tcp://127.0.0.1:5590")
    parser.add_argument("--time-scale", type=float, default=1.0, help="real s per daemon s")
    parser.add_argument("--faults", default="", help="rates per daemon hour: conflict=2,ban=0.1")
    parser.add_argument("--session-ttl", type=float, default=DEFAULT_SESSION_TTL)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--connect-latency", type=float, default=0.5)
    parser.add_argument("--send-latency", type=float, default=0.2)
    args = parser.parse_args(argv)
    try:
        serve(
            args.endpoint,
            args.time_scale,
            args.faults,
            session_ttl=args.session_ttl,
            seed=args.seed,
            connect_latency=args.connect_latency,
            send_latency=args.send_latency,
        )
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
