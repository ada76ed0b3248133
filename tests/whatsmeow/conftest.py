"""Fixtures: a loopback SOCKS5 proxy that refuses, resets or stalls, a real HostPool, a sink.

No test traffic leaves the machine: every session is given the proxy on 127.0.0.1 (whatsmeow
sends the hostname to the proxy, so nothing is even resolved), and WAZ_WHATSMEOW_OFFLINE makes
the host refuse any session without a loopback proxy.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.pg import need_postgres, server_url
from waz_actors.config import Config, parse
from waz_actors.drivers.base import Disconnected, DriverContext, DriverEvent
from waz_actors.drivers.host.client import HostPool
from waz_actors.drivers.whatsmeow import WhatsmeowDriver


def failed(ev: object) -> bool:
    """A connection attempt that ended before a session existed."""
    return isinstance(ev, Disconnected) and ev.reason.startswith("connect failed")


class LoopbackProxy:
    """A SOCKS5 (and HTTP CONNECT) endpoint on 127.0.0.1 that never reaches anywhere."""

    def __init__(self, mode: str) -> None:
        self.mode = mode  # refuse | reset | stall
        self.requests: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            if self.mode == "stall":
                self._stop.wait()
                return
            greeting = conn.recv(512)
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                return
            conn.sendall(b"\x05\x00")  # no authentication
            self.requests.append(greeting + b"|" + conn.recv(512))
            conn.sendall(b"\x05\x05\x00\x01\0\0\0\0\0\0")  # "connection refused"
        except OSError:
            pass
        finally:
            if self.mode != "stall":
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for c in self._conns:
            c.close()


class Sink:
    def __init__(self) -> None:
        self.events: list[DriverEvent] = []
        self._cv = threading.Condition()

    def __call__(self, ev: DriverEvent) -> None:
        with self._cv:
            self.events.append(ev)
            self._cv.notify_all()

    def wait(self, pred: Callable[[list[DriverEvent]], bool], timeout: float = 15.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: pred(self.events), timeout=timeout)

    def count(self, cls: type, **fields: Any) -> int:
        return sum(
            1
            for e in self.events
            if isinstance(e, cls) and all(getattr(e, k) == v for k, v in fields.items())
        )


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="wm", dir="/tmp"))  # ipc paths must stay short
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAZ_WHATSMEOW_OFFLINE", "1")


@pytest.fixture
def make_proxy() -> Iterator[Callable[[str], LoopbackProxy]]:
    made: list[LoopbackProxy] = []

    def make(mode: str) -> LoopbackProxy:
        p = LoopbackProxy(mode)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def small_config(**whatsmeow: Any) -> Config:
    wm = {"sessions_per_host": 2, "heartbeat": 0.2, "heartbeat_misses": 5, **whatsmeow}
    return parse({"whatsmeow": wm, "connection": {"timeout": 30.0, "pairing_timeout": 1.0}})


@pytest.fixture
def make_pool(workdir: Path, offline: None) -> Iterator[Callable[..., HostPool]]:
    pools: list[HostPool] = []

    def make(**whatsmeow: Any) -> HostPool:
        cfg = small_config(**whatsmeow)
        pool = HostPool(cfg, workdir / "run", workdir / "state")
        pool.start()
        pools.append(pool)
        return pool

    yield make
    for p in pools:
        p.stop()


def make_driver(
    pool: HostPool, iid: str, proxy: str, workdir: Path
) -> tuple[WhatsmeowDriver, Sink]:
    sink = Sink()
    ctx = DriverContext(
        instance_id=iid, settings={"proxy": proxy}, state_dir=str(workdir / "state"), sink=sink
    )
    return WhatsmeowDriver(ctx, pool), sink


@pytest.fixture
def db_url() -> Iterator[str]:
    """A fresh database: whatsmeow's migration looks for its tables in every schema of it."""
    need_postgres()
    import psycopg

    name = f"wz_wm_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    parts = urlsplit(server_url())
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    finally:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
