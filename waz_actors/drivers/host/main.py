"""The driver-host process: a few whatsmeow sessions behind one library lock.

whatsmeow's Go side (through neonize 0.5.2) keeps its clients in maps without locks: concurrent
connects, or a status poll during a connect, abort the whole process. So every call into the
library holds `LIB_LOCK`, and a connect keeps holding it until the attempt has settled (connected,
QR shown, failed). A dial that stalls therefore blocks this host; the pool sees the connect
deadline pass and kills the host, which is the only way to end such a dial (`stop()` blocks too).

Threads: the main thread owns the ZeroMQ socket; each session has one worker thread that runs its
commands in order, plus neonize's own connect thread. Event handlers only map and forward.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from waz_actors.drivers.base import (
    Connected,
    Disconnected,
    DriverEvent,
    RequestDone,
    SendResult,
)
from waz_actors.drivers.host import media as host_media
from waz_actors.drivers.host.protocol import TO_HOST, ProtocolError, pack, unpack
from waz_actors.drivers.host.state import remove_db
from waz_actors.drivers.whatsmeow_events import map_event, map_qr, to_wire

LIB_LOCK = threading.Lock()
log = logging.getLogger("waz.host")

# Event types that end the connect phase: the lock may go to the next session.
_SETTLING = {"Connected", "PairStatus", "LoggedOut", "StreamReplaced", "TemporaryBan"}
_SETTLING |= {"ConnectFailure", "ClientOutdated"}
# Event types after which the session must stop (whatsmeow does not reconnect, neither do we).
_STOPPING = {"StreamReplaced", "LoggedOut", "TemporaryBan", "ClientOutdated"}


def private_db(path: str) -> None:
    """Make the session's directory 0700 and its files 0600 before the library opens them.

    They hold the device's keys. The host's umask covers what SQLite creates later (-wal, -shm);
    this covers files and directories left readable by older versions.
    """
    d = Path(path).parent
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    d.chmod(0o700)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


def is_loopback_proxy(proxy: str) -> bool:
    from urllib.parse import urlsplit

    try:
        host = urlsplit(proxy).hostname
    except ValueError:
        return False
    return host is not None and (host == "localhost" or host.startswith("127."))


def parse_to(to: str) -> tuple[str, str]:
    """`to` as (user, server): digits, or a full JID. ValueError for anything else."""
    user, _, server = to.partition("@")
    server = server or "s.whatsapp.net"
    if server not in ("s.whatsapp.net", "g.us", "lid", "newsletter"):
        raise ValueError(f"unsupported JID server {server!r}")
    if not user or not user.replace("-", "").isdigit() or len(user) > 40:
        raise ValueError(f"bad recipient {to!r}: expected digits or a WhatsApp JID")
    return user, server


class Session:
    def __init__(self, host: Host, msg: dict[str, Any]) -> None:
        self.host = host
        self.iid: str = msg["iid"]
        self.gen: int = int(msg["gen"])
        self.db: str = msg["db"]
        self.opened = self.db  # what the library opens: the URL tagged for this session
        self.store_tag = ""  # its application_name, when the store is PostgreSQL
        self.proxy: str = msg.get("proxy") or ""
        self.phone: str | None = msg.get("phone")
        self.tasks: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.settled = threading.Event()
        self.ended = False
        self.closing = False  # a close is queued: a send still preparing its media is dropped
        self.qr_count = 0
        self.jid = ""
        self.client: Any = None
        self.life: threading.Thread | None = None
        self.worker = threading.Thread(target=self._run, name=f"s-{self.iid}", daemon=True)

    # -- forwarding (runs on Go/neonize threads: map and queue, nothing else) ---------------

    def emit(self, ev: DriverEvent) -> None:
        if not self.ended:
            self.host.post({"op": "event", "iid": self.iid, "gen": self.gen, "ev": to_wire(ev)})

    def on_event(self, ev: Any) -> None:
        name = ev.DESCRIPTOR.name
        if name in _SETTLING:
            self.settled.set()
        if name == "Connected":
            self.tasks.put(("connected", {}))  # the JID needs a library call: not on this thread
            return
        for out in map_event(ev, jid=self.jid):
            self.emit(out)
        if name in _STOPPING:
            self.tasks.put(("stop", {"remove": name == "LoggedOut"}))

    def on_qr(self, data: bytes) -> None:
        self.qr_count += 1
        self.emit(map_qr(data, first=self.qr_count == 1))
        if self.qr_count == 1:
            self.settled.set()
            if self.phone:
                self.tasks.put(("pair", {"phone": self.phone}))

    # -- worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._connect():
                while True:
                    op, args = self.tasks.get()
                    if op == "close":
                        self._stop(remove=bool(args.get("remove")))
                        return
                    getattr(self, "_do_" + op)(**args)
                    if self.ended:
                        return
        except Exception:
            log.exception("[%s] session worker failed", self.iid)
        finally:
            self.ended = True
            self._release_store()
            self.host.session_ended(self)

    def _release_store(self) -> None:
        """End the store connections neonize leaves open after every session (wm_pg.release)."""
        if not self.store_tag:
            return
        from waz_actors.drivers import wm_pg

        try:
            wm_pg.release(self.db, self.store_tag)
        except Exception as e:
            log.warning("[%s] session store connections not released: %s", self.iid, e)

    def _connect(self) -> bool:
        from neonize._binder import ProxySettings
        from neonize.client import NewClient
        from neonize.events import EVENT_TO_INT

        if os.environ.get("WAZ_WHATSMEOW_OFFLINE") and not is_loopback_proxy(self.proxy):
            # Tests and benchmarks: refuse anything that could dial past this machine.
            self.emit(
                Disconnected(
                    code=None, reason="connect failed: offline mode needs a loopback proxy"
                )
            )
            return False
        if not self._prepare_store():
            return False
        with LIB_LOCK:
            client = NewClient(self.opened, uuid=f"{self.iid}.{self.gen}")
            for cls in EVENT_TO_INT:
                if cls.DESCRIPTOR.name != "Device":
                    client.event(cls)(lambda _c, ev: self.on_event(ev))
            client.event.qr(lambda _c, data: self.on_qr(data))
            self.client = client
        failure: list[str] = []

        def life() -> None:
            try:
                client.connect(ProxySettings(proxy_address=self.proxy) if self.proxy else None)
            except Exception as e:
                failure.append(str(e) or type(e).__name__)
            finally:
                self.settled.set()
                self.tasks.put(("ended", {}))

        # Connects one at a time: the lock stays held until this attempt has settled.
        with LIB_LOCK:
            self.life = threading.Thread(target=life, name=f"c-{self.iid}", daemon=True)
            self.life.start()
            self.settled.wait()
        if failure:
            self.emit(Disconnected(code=None, reason=f"connect failed: {failure[0]}"))
            return False
        return True

    def _prepare_store(self) -> bool:
        """The session's file (0600 in a 0700 directory), or its schema in the cluster's
        PostgreSQL; a store that cannot be prepared is a failed connect."""
        from waz_actors.drivers import wm_pg

        if not wm_pg.is_pg(self.db):
            private_db(self.db)
            return True
        try:
            wm_pg.prepare(self.db)
            self.store_tag = wm_pg.new_tag()
            self.opened = wm_pg.tagged(self.db, self.store_tag)
        except Exception as e:
            log.warning("[%s] session store %s: %s", self.iid, wm_pg.masked(self.db), e)
            self.emit(Disconnected(code=None, reason=f"connect failed: session store: {e}"))
            return False
        return True

    def _do_connected(self) -> None:
        with LIB_LOCK:
            me = self.client.get_me()  # safe only after connect: nil before, abort
        from waz_actors.drivers.whatsmeow_events import jid_to_str

        self.jid = jid_to_str(me.JID)
        self.emit(Connected(jid=self.jid))

    def _do_send(
        self,
        mid: str,
        to: str,
        text: str,
        media: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
    ) -> None:
        from neonize.utils.jid import build_jid

        try:
            user, server = parse_to(to)
        except ValueError as e:
            self.emit(SendResult(message_id=mid, ok=False, error=str(e), permanent=True))
            return
        content: Any = text
        info = None
        if media:
            # Fetched here, outside LIB_LOCK: only this session's worker waits on the URL.
            ready = host_media.prepare(
                self.client, LIB_LOCK, self.host.uploads, mid, text, media, limits
            )
            if isinstance(ready, SendResult):
                self.emit(ready)
                return
            content, info = ready
            if self.closing:
                # The daemon already counts this send as outcome unknown and will send it again.
                log.info("[%s] session closing: media message %s not sent", self.iid, mid)
                return
        try:
            with LIB_LOCK:
                resp = self.client.send_message(build_jid(user, server), content)
        except Exception as e:
            why = str(e) or type(e).__name__
            self.emit(SendResult(message_id=mid, ok=False, error=why, media=info))
            return
        self.emit(SendResult(message_id=mid, ok=True, wa_id=resp.ID, media=info))

    def _do_pair(self, phone: str) -> None:
        from waz_actors.drivers.base import DriverAlarm, PairCode

        try:
            with LIB_LOCK:
                code = self.client.PairPhone(phone, show_push_notification=True)
        except Exception as e:
            self.emit(DriverAlarm(kind="pair_failed", message=str(e) or type(e).__name__))
            return
        self.emit(PairCode(code=code))

    def _do_query(self, rid: str, kind: str, args: dict[str, Any]) -> None:
        from waz_actors.drivers.host.queries import answer

        self.emit(answer(self.client, LIB_LOCK, rid, kind, args))

    def _do_logout(self) -> None:
        from waz_actors.drivers.base import LoggedOut

        try:
            with LIB_LOCK:
                self.client.logout()
        except Exception as e:
            log.warning("[%s] logout failed (%s); removing the session anyway", self.iid, e)
        self.emit(LoggedOut(reason="logout requested"))
        self._stop(remove=True)

    def _do_stop(self, remove: bool) -> None:
        self._stop(remove=remove)

    def _do_ended(self) -> None:
        self.ended = True  # connect() returned: the session is over

    def _stop(self, remove: bool) -> None:
        with LIB_LOCK:
            self.client.stop()
        if self.life is not None:
            self.life.join(timeout=10)
        self.ended = True
        if remove:
            try:
                remove_db(self.db)
            except Exception as e:  # left for instance.delete, which removes it too
                log.warning("[%s] could not remove the session: %s", self.iid, e)


class Host:
    def __init__(self, host_id: str) -> None:
        self.host_id = host_id
        self.sessions: dict[str, Session] = {}
        self.out: queue.Queue[dict[str, Any]] = queue.Queue()
        self.pending: dict[str, dict[str, Any]] = {}  # opens waiting for the old session's end
        self.guard = threading.Lock()  # protects the dicts, never held around a library call
        self.uploads = host_media.Uploads()  # media uploaded by this host, for its life

    def post(self, msg: dict[str, Any]) -> None:
        self.out.put(msg)

    def session_ended(self, s: Session) -> None:
        with self.guard:
            if self.sessions.get(s.iid) is s:
                del self.sessions[s.iid]
            nxt = self.pending.pop(s.iid, None)
        self.post({"op": "closed", "iid": s.iid, "gen": s.gen})
        if nxt is not None:
            self.handle(nxt)

    def handle(self, msg: dict[str, Any]) -> bool:
        """Run one command from the pool; False when the host must exit."""
        op = msg["op"]
        if op == "ping":
            self.post({"op": "pong", "seq": msg["seq"], **stats(), "sessions": len(self.sessions)})
        elif op == "exit":
            return False
        elif op == "open":
            with self.guard:
                if msg["iid"] in self.sessions:
                    self.pending[msg["iid"]] = msg  # starts once the previous session has ended
                    return True
                s = Session(self, msg)
                self.sessions[s.iid] = s
            s.worker.start()
        else:
            with self.guard:
                found = self.sessions.get(msg["iid"])
                if op == "close" and self.pending.get(msg["iid"], {}).get("gen") == msg.get("gen"):
                    del self.pending[msg["iid"]]  # closed before it even started
            if found is None:
                if op == "close":
                    if msg.get("remove") and msg.get("db"):
                        remove_db(msg["db"], background=True)  # not on the socket's thread
                    self.post({"op": "closed", "iid": msg["iid"], "gen": msg.get("gen", -1)})
                elif op in ("send", "query"):
                    error = "no session on host"
                    ev: DriverEvent = (
                        SendResult(message_id=msg["mid"], ok=False, error=error)
                        if op == "send"
                        else RequestDone(request_id=msg["rid"], error=error)
                    )
                    self.post({"op": "event", "iid": msg["iid"], "gen": -1, "ev": to_wire(ev)})
                return True
            args = {k: v for k, v in msg.items() if k not in ("op", "iid", "gen", "db")}
            if op in ("close", "logout"):
                found.closing = True
            found.tasks.put((op, args))
        return True


def stats() -> dict[str, int]:
    rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_kib": rss,
        "threads": len(os.listdir("/proc/self/task")),
    }


def setup_logging(host_id: str) -> None:
    # neonize calls logging.basicConfig at import; replace its handler with one plain line format
    # on stderr, which the pool reads and logs with the host id.
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Media messages are built without neonize's ffmpeg helpers (host/media.py): not needed.
    logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="waz_actors.drivers.host")
    p.add_argument("--id", required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--orphan-after", type=float, default=60.0, help="exit without pings (s)")
    args = p.parse_args(argv)
    os.umask(0o077)  # session databases hold the device's keys: files only this user can read
    t0 = time.monotonic()
    import neonize.client  # noqa: F401  (load the Go library before saying hello)

    setup_logging(args.id)
    log.info("neonize loaded in %.2f s", time.monotonic() - t0)
    host = Host(args.id)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, args.id.encode())
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(args.endpoint)
    sock.send(pack({"op": "hello", "pid": os.getpid()}))
    parent = os.getppid()
    last_ping = time.monotonic()
    running = True
    while running:
        if sock.poll(20):
            frame = sock.recv()
            try:
                msg = unpack(frame, TO_HOST)
            except ProtocolError as e:
                log.error("bad message from pool: %s", e)
                continue
            if msg["op"] == "ping":
                last_ping = time.monotonic()
            running = host.handle(msg)
        while True:
            try:
                sock.send(pack(host.out.get_nowait()))
            except queue.Empty:
                break
        if os.getppid() != parent or time.monotonic() - last_ping > args.orphan_after:
            log.error("daemon gone; exiting")
            running = False
    sys.stderr.flush()
    # Session threads may sit in Go calls that never return: leave without joining them.
    os._exit(0)
