"""The daemon side of the driver hosts: `HostPool` starts, heartbeats, kills and restarts them.

One I/O thread owns the ROUTER socket and does all supervision; drivers hand it commands through
a queue, so no driver call blocks. A host is killed (SIGKILL) and started again when its process
exits, it misses `heartbeat_misses` heartbeats, its fd count passes `fd_budget`, a connect of one
of its sessions is unsettled past `connection.timeout`, a pairing runs past
`connection.pairing_timeout` and the host then fails to stop it, or a close is not acknowledged.
Every open session of a dead host gets `Disconnected(None, "driver host died", transient=True)`:
the instance reconnects through its own throttle, so the sessions come back staggered.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import zmq
from loguru import logger

from waz_actors.clock import RealClock
from waz_actors.config import Config
from waz_actors.drivers.host.env import host_env
from waz_actors.drivers.host.protocol import TO_POOL, ProtocolError, pack, pool_endpoint, unpack
from waz_actors.drivers.host.state import HostInfo, HostListener, _Inst, remove_db
from waz_actors.policy.backoff import BackoffPolicy

_SETTLED = {"Connected", "QrCode", "PairCode", "Disconnected", "LoggedOut", "Conflict"}
_SETTLED |= {"Banned", "Paired", "DriverAlarm"}
# A failed spawn (EAGAIN at systemd's TasksMax, ...) is retried after this, in daemon seconds.
_SPAWN_BACKOFF = BackoffPolicy(initial=1.0, multiplier=2.0, maximum=60.0, jitter=0.2)


class HostPool:
    def __init__(
        self,
        config: Config,
        runtime_dir: str | Path,
        state_dir: str | Path,
        *,
        clock: RealClock | None = None,
        python: str = sys.executable,
        on_alarm: Callable[[str, str], None] | None = None,
    ) -> None:
        """`on_alarm(kind, message)`: daemon alarms (a failed spawn), instances waiting or not."""
        self.config = config
        self.wm = config.whatsmeow
        self.runtime_dir = Path(runtime_dir)
        self.state_dir = Path(state_dir)
        self.clock = clock or RealClock(config.daemon.time_scale)
        self.time_scale = config.daemon.time_scale
        self.python = python
        self.on_alarm = on_alarm
        self.endpoint = pool_endpoint(self.runtime_dir, os.getpid())
        self.hosts: dict[str, HostInfo] = {}
        self.deaths = 0
        self._insts: dict[str, _Inst] = {}
        self._cmds: queue.Queue[Callable[[], None]] = queue.Queue()
        self._lock = threading.Lock()  # assignment of instances to hosts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wm-pool", daemon=True)
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._sock: zmq.Socket[bytes] | None = None
        self._seq = 0
        self._next_id = 0
        # Hosts start one at a time (importing the library is CPU-heavy): the next spawn waits
        # for the previous host's hello, so 25 hosts do not starve each other's heartbeats.
        self._spawn_queue: deque[HostInfo] = deque()
        self._starting: HostInfo | None = None
        self._spawn_failures = 0  # in a row; the next spawn waits until _spawn_after (daemon s)
        self._spawn_after = 0.0
        self._alarmed: set[str] = set()  # instances told about the current spawn failures

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        sock_dir = Path(self.endpoint.removeprefix("ipc://")).parent
        sock_dir.mkdir(mode=0o700, exist_ok=True)
        sock_dir.chmod(0o700)  # only the daemon's user may talk to the hosts or pose as one
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(self.endpoint)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every host to exit, kill those that do not, close the socket."""
        if not self._thread.is_alive():
            return
        self._stop.set()
        self._thread.join(timeout=timeout + 5)

    # -- driver API (non-blocking, any thread) --------------------------------------------

    def attach(self, listener: HostListener) -> str:
        """Give an instance a host slot (starting a host when all are full); returns its id."""
        iid = listener.instance_id
        with self._lock:
            inst = self._insts.get(iid)
            if inst is not None:
                inst.listener, inst.detached = listener, False
                return inst.host
            hid = self._pick_host()
            self._insts[iid] = _Inst(listener=listener, host=hid)
            self.hosts[hid].instances.add(iid)
        return hid

    def detach(self, iid: str) -> None:
        """Free the instance's slot once its session is closed. Queued behind the driver's
        close: popped at once, the close would find no instance and never reach the host."""
        with self._lock:
            inst = self._insts.get(iid)
        if inst is not None:
            listener = inst.listener
            self._cmds.put(lambda: self._detach(iid, listener))

    def _detach(self, iid: str, listener: HostListener) -> None:
        with self._lock:
            inst = self._insts.get(iid)
            if inst is None or inst.listener is not listener:
                return  # attached again since (the same id created anew)
            if inst.open:
                inst.detached = True  # popped when the close is acknowledged or the host dies
                return
            self._insts.pop(iid)
            if inst.host in self.hosts:
                self.hosts[inst.host].instances.discard(iid)

    def _closed_for_good(self, iid: str, inst: _Inst) -> None:
        """The session is over (acknowledged, or its host killed): finish a delete."""
        if inst.remove_gen == inst.gen:
            remove_db(inst.remove_db, background=True)
            inst.remove_gen = None
        if inst.detached:
            self._detach(iid, inst.listener)

    def open(self, iid: str, gen: int, db: str, proxy: str, phone: str | None = None) -> None:
        msg = {"op": "open", "iid": iid, "gen": gen, "db": db, "proxy": proxy, "phone": phone}
        self._cmds.put(lambda: self._open(iid, gen, msg, pairing=phone is not None))

    def close(self, iid: str, db: str, remove: bool = False) -> None:
        self._cmds.put(lambda: self._close(iid, db, remove))

    def send(self, iid: str, mid: str, to: str, text: str, **extra: Any) -> None:
        # extra: media, limits
        self.to_session(iid, {"op": "send", "mid": mid, "to": to, "text": text, **extra})

    def logout(self, iid: str) -> None:
        self.to_session(iid, {"op": "logout"})

    def to_session(self, iid: str, msg: dict[str, Any]) -> None:  # send, logout, query
        self._cmds.put(lambda: self._to_inst_host(iid, msg))

    def pair(self, iid: str, phone: str) -> None:
        self._cmds.put(lambda: self._pair(iid, phone))

    def kill_host(self, host_id: str) -> None:
        """Operator/test hook: treat the host as hung."""
        self._cmds.put(lambda: self._host_died(self.hosts[host_id], "killed on request"))

    def host_of(self, iid: str) -> str | None:
        inst = self._insts.get(iid)
        return inst.host if inst else None

    # -- I/O thread -------------------------------------------------------------------------

    def _pick_host(self) -> str:
        for hid, h in self.hosts.items():
            if len(h.instances) < self.wm.sessions_per_host:
                return hid
        hid = f"h{self._next_id}"
        self._next_id += 1
        self.hosts[hid] = HostInfo(host_id=hid)
        self._cmds.put(lambda: self._request_spawn(self.hosts[hid]))
        return hid

    def _request_spawn(self, h: HostInfo) -> None:
        if all(q is not h for q in self._spawn_queue):
            self._spawn_queue.append(h)
        self._spawn_next()

    def _spawn_next(self) -> None:
        s = self._starting
        if s is not None and not s.ready and s.proc is not None and s.proc.poll() is None:
            return
        self._starting = None
        if self._spawn_queue and self.clock.now() >= self._spawn_after:
            h = self._starting = self._spawn_queue.popleft()
            try:
                self._spawn(h)
            except Exception as e:
                self._spawn_failed(h, e)
                return
            if self._spawn_failures:
                logger.info("whatsmeow host {} started after failed spawns", h.host_id)
            self._spawn_failures = 0
            self._alarmed.clear()
            self._start_deadlines(h, h.started)

    def _spawn_failed(self, h: HostInfo, e: Exception) -> None:
        """Retry with backoff; tell the instances waiting for this host, once per failure run."""
        if h.proc is not None and h.proc.poll() is None:
            h.proc.kill()  # started, but its log threads could not: start it again whole
            h.proc.wait()
        h.proc, self._starting = None, None
        self._spawn_queue.appendleft(h)
        self._spawn_failures += 1
        delay = _SPAWN_BACKOFF.delay(self._spawn_failures)
        self._spawn_after = self.clock.now() + delay
        why = f"driver host {h.host_id} could not be started ({e}); retrying in {delay:.0f} s"
        logger.error("whatsmeow {} (failure {})", why, self._spawn_failures)
        if self._spawn_failures == 1 and self.on_alarm is not None:
            self.on_alarm("driver_host_spawn_failed", why)  # once per run of failures
        for iid in sorted(h.instances - self._alarmed):
            inst = self._insts.get(iid)
            if inst is not None and inst.open:
                self._alarmed.add(iid)
                alarm = {"type": "DriverAlarm", "kind": "driver_host_spawn_failed"}
                inst.listener.on_host_event(inst.gen, {**alarm, "message": why})

    def _start_deadlines(self, h: HostInfo, now: float) -> None:
        """Sessions that waited for their host to start get their full time from its start."""
        for iid in h.instances:
            inst = self._insts.get(iid)
            if inst is None or not inst.open:
                continue
            timeout = self.config.connection.timeout * self.time_scale
            if inst.connect_deadline is not None:
                inst.connect_deadline = max(inst.connect_deadline, now + timeout)
            if inst.pair_deadline is not None:
                inst.pair_deadline = max(inst.pair_deadline, now + self._pairing_timeout())
            if inst.close_deadline is not None:
                inst.close_deadline = max(inst.close_deadline, now + self._grace())

    def _spawn(self, h: HostInfo) -> None:
        env = host_env(os.environ)  # never the daemon's secrets (WAZ_TOKEN, ...)
        orphan = max(10.0, self.wm.heartbeat * self.wm.heartbeat_misses * 4)
        cmd = [self.python, "-m", "waz_actors.drivers.host", "--id", h.host_id]
        cmd += ["--endpoint", self.endpoint, "--orphan-after", str(orphan)]
        h.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
        )
        h.pid = h.proc.pid
        h.ready = False
        h.started = h.last_pong = time.monotonic()
        for name, pipe in (("stdout", h.proc.stdout), ("stderr", h.proc.stderr)):
            threading.Thread(
                target=_pump, args=(h.host_id, h.pid, name, pipe), daemon=True, name="wm-log"
            ).start()
        logger.info("whatsmeow host {} started (pid {})", h.host_id, h.pid)

    def _send_host(self, h: HostInfo, msg: dict[str, Any]) -> None:
        if not h.ready:
            h.backlog.append(msg)  # a ROUTER drops frames for peers it has not seen yet
            return
        assert self._sock is not None
        self._sock.send_multipart([h.host_id.encode(), pack(msg)])

    def _to_inst_host(self, iid: str, msg: dict[str, Any]) -> None:
        inst = self._insts.get(iid)
        if inst is not None:
            self._send_host(self.hosts[inst.host], {**msg, "iid": iid})

    def _open(self, iid: str, gen: int, msg: dict[str, Any], pairing: bool) -> None:
        inst = self._insts.get(iid)
        if inst is None:
            return
        now = time.monotonic()
        inst.gen, inst.open = gen, True
        inst.connect_deadline = now + self.config.connection.timeout * self.time_scale
        inst.pair_deadline = now + self._pairing_timeout() if pairing else None
        self._send_host(self.hosts[inst.host], msg)

    def _pair(self, iid: str, phone: str) -> None:
        inst = self._insts.get(iid)
        if inst is not None and inst.pair_deadline is None:
            inst.pair_deadline = time.monotonic() + self._pairing_timeout()
        self._to_inst_host(iid, {"op": "pair", "phone": phone})

    def _close(self, iid: str, db: str, remove: bool) -> None:
        inst = self._insts.get(iid)
        if inst is None:
            return
        inst.connect_deadline = inst.pair_deadline = None
        if inst.open:
            inst.close_deadline = time.monotonic() + self._grace()
        if remove:
            inst.remove_gen, inst.remove_db = inst.gen, db
        msg = {"op": "close", "iid": iid, "gen": inst.gen, "db": db, "remove": remove}
        self._send_host(self.hosts[inst.host], msg)

    def _pairing_timeout(self) -> float:
        return self.config.connection.pairing_timeout * self.time_scale

    def _grace(self) -> float:
        return self.wm.heartbeat * self.wm.heartbeat_misses

    def _run(self) -> None:
        assert self._sock is not None
        next_ping = 0.0
        try:
            while not self._stop.is_set():
                if self._sock.poll(20):
                    while True:
                        try:
                            ident, frame = self._sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        except ValueError:
                            continue  # not two frames: not one of our hosts
                        try:
                            self._on_frame(ident.decode(errors="replace"), frame)
                        except Exception:
                            logger.exception("whatsmeow pool: a host's message failed")
                while True:
                    try:
                        self._cmds.get_nowait()()
                    except queue.Empty:
                        break
                    except Exception:
                        logger.exception("whatsmeow pool command failed")
                now = time.monotonic()
                try:  # the pool thread must outlive any error: every send depends on it
                    if now >= next_ping:
                        next_ping = now + self.wm.heartbeat
                        self._ping_all()
                    self._check(now)
                except Exception:
                    logger.exception("whatsmeow pool supervision failed")
        finally:
            self._shutdown()

    def _on_frame(self, hid: str, frame: bytes) -> None:
        h = self.hosts.get(hid)
        if h is None:
            logger.warning("whatsmeow pool: frame from unknown host {!r} dropped", hid)
            return
        try:
            msg = unpack(frame, TO_POOL)
        except ProtocolError as e:
            logger.error("whatsmeow host {}: bad message: {}", hid, e)
            return
        op = msg["op"]
        h.last_pong = time.monotonic()
        if op == "hello":
            h.ready = True
            self._spawn_next()
            backlog, h.backlog = h.backlog, []
            for m in backlog:
                self._send_host(h, m)
        elif op == "pong":
            h.fds, h.rss_kib = int(msg["fds"]), int(msg.get("rss_kib", 0))
            h.threads = int(msg.get("threads", 0))
        elif op == "event":
            self._on_event(msg)
        elif op == "closed":
            inst = self._insts.get(msg["iid"])
            if inst is not None and msg["gen"] in (inst.gen, -1):
                inst.open = False
                inst.connect_deadline = inst.pair_deadline = inst.close_deadline = None
                inst.listener.on_session_closed(inst.gen)
                self._closed_for_good(msg["iid"], inst)

    def _on_event(self, msg: dict[str, Any]) -> None:
        inst = self._insts.get(msg["iid"])
        if inst is None:
            return
        body = msg["ev"]
        kind = body.get("type") if isinstance(body, dict) else None
        if msg["gen"] == inst.gen:
            if kind in _SETTLED:
                inst.connect_deadline = None
            if kind == "QrCode" and inst.pair_deadline is None:
                inst.pair_deadline = time.monotonic() + self._pairing_timeout()
            if kind in ("Connected", "Paired"):
                inst.pair_deadline = None
        if isinstance(body, dict):
            inst.listener.on_host_event(int(msg["gen"]), body)

    def _ping_all(self) -> None:
        self._seq += 1
        for h in list(self.hosts.values()):
            if h.ready:
                self._send_host(h, {"op": "ping", "seq": self._seq})

    def _check(self, now: float) -> None:
        self._spawn_next()  # in case the starting host died before its hello
        for h in list(self.hosts.values()):
            if h.proc is None:
                continue
            code = h.proc.poll()
            if code is not None:
                self._host_died(h, f"exited with code {code}")
                continue
            limit = self.wm.heartbeat * self.wm.heartbeat_misses
            if not h.ready:
                limit = max(30.0, limit)  # importing neonize takes seconds on a busy machine
            if now - h.last_pong > limit:
                self._host_died(h, "missed heartbeats")
            elif h.fds > self.wm.fd_budget:
                self._host_died(h, f"{h.fds} open files, budget {self.wm.fd_budget}")
            else:
                self._check_deadlines(h, now)

    def _check_deadlines(self, h: HostInfo, now: float) -> None:
        for iid in list(h.instances):
            inst = self._insts.get(iid)
            if inst is None or not inst.open:
                continue
            if inst.pair_deadline is not None and now > inst.pair_deadline:
                # End the pairing; if the host cannot stop it in time, the close deadline kills it.
                inst.pair_deadline = inst.connect_deadline = None
                body = {"type": "Disconnected", "code": None, "reason": "pairing timed out"}
                inst.listener.on_host_event(inst.gen, {**body, "transient": False})
                self._close(iid, "", remove=False)
            elif inst.connect_deadline is not None and now > inst.connect_deadline:
                self._host_died(h, f"connect of {iid} unsettled past its deadline")
                return
            elif inst.close_deadline is not None and now > inst.close_deadline:
                self._host_died(h, f"session {iid} did not stop")
                return

    def _host_died(self, h: HostInfo, why: str) -> None:
        self.deaths += 1
        logger.warning("whatsmeow host {} (pid {}) died: {}; restarting", h.host_id, h.pid, why)
        if h.proc is not None:
            if h.proc.poll() is None:
                h.proc.kill()
            h.proc.wait()
        h.ready, h.backlog, h.fds = False, [], 0
        for iid in list(h.instances):
            inst = self._insts.get(iid)
            if inst is not None and inst.open:
                inst.open = False
                inst.connect_deadline = inst.pair_deadline = inst.close_deadline = None
                inst.listener.on_host_died(inst.gen)
                self._closed_for_good(iid, inst)  # the process is gone: nothing writes the files
        h.restarts += 1
        h.proc = None
        self._request_spawn(h)

    def _shutdown(self) -> None:
        hosts = list(self.hosts.values())
        for h in hosts:
            if h.ready:
                self._send_host(h, {"op": "exit"})
            elif h.proc is not None and h.proc.poll() is None:
                h.proc.kill()  # still importing the library: nothing to close cleanly
        deadline = time.monotonic() + 2.0
        for h in hosts:
            if h.proc is None:
                continue
            try:
                h.proc.wait(timeout=max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                h.proc.kill()
                h.proc.wait()
        if self._sock is not None:
            self._sock.close(0)
        if self._ctx is not None:
            self._ctx.term()
        try:
            os.unlink(self.endpoint.removeprefix("ipc://"))
        except OSError:
            pass


def _pump(host_id: str, pid: int, stream: str, pipe: IO[bytes]) -> None:
    """Log every line a host prints (Python logging, Go's fmt prints, Go panics), labelled."""
    log = logger.bind(host=host_id, pid=pid)
    for raw in iter(pipe.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        if not line:
            continue
        level = (
            "WARNING"
            if line.startswith(("WARNING", "ERROR", "CRITICAL", "panic", "fatal"))
            else "INFO"
        )
        if line.startswith(("ERROR", "CRITICAL", "panic:", "fatal error")):
            level = "ERROR"
        log.log(level, "[whatsmeow host {} {}] {}", host_id, stream, line)
    pipe.close()


__all__ = ["HostInfo", "HostListener", "HostPool"]
