"""The fake WhatsApp network as a server, so several daemon processes share one network.

`SimServer` puts a `SimNetwork` behind a ZeroMQ ROUTER socket; `RemoteSimNetwork` (`remote.py`)
is the client a daemon uses instead of an in-process network. `serve` runs one until a signal;
`waz-actors sim serve` is its command line. Every frame is one msgpack map with an `op`
(`wire.py`):

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

Time. The server's time_scale must match the daemons' for latencies and bans to mean the same.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import zmq
from loguru import logger

from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.base import Disconnected, DriverEvent, SendResult, Sink
from waz_actors.drivers.sim.faults import FaultSchedule, parse_fault_rates
from waz_actors.drivers.sim.mailbox import Mailbox
from waz_actors.drivers.sim.model import FINAL_EVENTS, SimSession
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.drivers.sim.wire import decode_message, encode_event, pack, unpack

DEFAULT_SESSION_TTL = 2.0  # real seconds without a word from a daemon before it counts as dead

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Owner:
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
        if self.pid is not None and self.host == HOST:
            return pid_alive(self.pid)
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
        self._router: zmq.Socket[bytes] | None = None
        self._mailbox: Mailbox[tuple[bytes, bytes]] | None = None  # frames to send
        self._owners: dict[bytes, Owner] = {}
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
        self._mailbox = Mailbox(self._ctx)
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

    @property
    def started(self) -> bool:
        """Bound and serving (a failed bind leaves nothing to stop)."""
        return self._thread is not None

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
            self._mailbox.put((identity, pack(body)))

    def _handle(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            self.bad_requests += 1
            return
        identity, payload = frames
        try:
            body = unpack(payload)
        except Exception:
            self.bad_requests += 1
            return
        if not isinstance(body, dict) or not isinstance(body.get("op"), str):
            self.bad_requests += 1
            return
        owner = self._owners.get(identity)
        if owner is None:
            owner = self._owners[identity] = Owner(self.session_ttl)
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

    def _op_hello(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        pid, host = body.get("pid"), body.get("host")
        owner.pid = pid if isinstance(pid, int) else None
        owner.host = host if isinstance(host, str) else None

    _op_hb = _op_hello

    def _op_bye(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        owner.gone = True

    def _op_open(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        sid = body["sid"]
        if not isinstance(sid, str) or sid in self._sessions:
            raise ValueError(f"bad or reused sid {sid!r}")
        session = self.network.open_session(
            body["instance_id"], self._session_sink(identity, sid), owner=owner
        )
        self._sessions[sid] = (identity, session)

    def _op_logout_offline(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        self.network.logout(body["instance_id"], self._session_sink(identity, body["sid"]))

    def _op_send(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        message = decode_message(body["message"])
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

    def _op_logout(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        entry = self._sessions.get(body["sid"])
        if entry is not None:
            entry[1].logout()

    def _op_pair_code(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        entry = self._sessions.get(body["sid"])
        if entry is not None:
            entry[1].request_pair_code(body["phone"])

    def _op_close(self, identity: bytes, owner: Owner, body: dict[str, Any]) -> None:
        entry = self._sessions.pop(body["sid"], None)
        if entry is not None:
            entry[1].close()

    def _session_sink(self, identity: bytes, sid: str) -> Sink:
        def sink(event: DriverEvent) -> None:
            if isinstance(event, FINAL_EVENTS):
                self._sessions.pop(sid, None)
            self._push(identity, self._event_frame(sid, event))

        return sink

    def _event_frame(self, sid: str, event: DriverEvent) -> dict[str, Any]:
        return {"op": "event", "sid": sid, "event": encode_event(event, self.network.clock.now())}


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
        if server.started:
            server.stop()
        scheduler.stop()


def _announce(endpoint: str) -> None:
    print(f"sim server listening on {endpoint}", flush=True)
