"""A real daemon (store, supervisor, sim driver, control server) on ipc sockets in a temp dir."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from tests.waiting import wait_until
from waz_actors.app.runtime import Daemon
from waz_actors.config import Config, parse
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client


class TestDaemon(Daemon):
    """The real runtime; only the whatsmeow host pool is left out (no phone in tests)."""

    __test__ = False

    def _wants_whatsmeow(self) -> bool:
        return False


def make_config(state: Path, run: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "daemon": {"state_dir": str(state), "runtime_dir": str(run), "time_scale": 0.01},
        "queue": {"pacing_interval": 0.0},
        "sim": {"connect_latency": 0.0, "send_latency": 0.0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse(data)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # ipc paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    d = Path(tempfile.mkdtemp(prefix="wz", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start_daemon(tmp_path: Path, short_dir: Path) -> Iterator[Callable[..., TestDaemon]]:
    started: list[TestDaemon] = []

    def start(**sections: dict[str, Any]) -> TestDaemon:
        n = len(started)
        cfg = make_config(tmp_path / f"state{n}", short_dir / f"run{n}", **sections)
        d = TestDaemon(cfg)
        d.start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop(timeout=5)


@pytest.fixture
def daemon(start_daemon: Callable[..., TestDaemon]) -> TestDaemon:
    return start_daemon()


@pytest.fixture
def admin(daemon: TestDaemon) -> Iterator[Client]:
    c = Client(daemon.cfg.control_endpoint, read_admin_token(daemon.cfg.state_dir), timeout=5)
    yield c
    c.close()


@pytest.fixture
def tenant_client(daemon: TestDaemon, admin: Client) -> Iterator[Callable[[str], Client]]:
    made: list[Client] = []

    def make(tenant: str) -> Client:
        token = admin.token_create(tenant, "test")["token"]
        c = Client(daemon.cfg.control_endpoint, token, timeout=5)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Any]:
    """A Dispatcher over a real store and fleet (sim driver), without sockets: tests call the
    commands through it (tests/control/dispatch_util.py)."""
    yield from running_core(tmp_path)


def running_core(tmp_path: Path, **sections: dict[str, Any]) -> Iterator[Any]:
    from tests.control.dispatch_util import Core

    cfg = make_config(tmp_path / "state", tmp_path / "run", **sections)
    d = TestDaemon(cfg, with_control=False)
    d.start()
    c = Core(d)
    yield c
    c.dispatcher.close()
    d.stop(timeout=5)


def online(client: Client, instance_id: str) -> None:
    client.instance_start(instance_id)
    wait_until(
        lambda: client.instance_get(instance_id)["state"] == "online",
        what=f"{instance_id} online",
    )


class Raw:
    """A bare DEALER for frames no well-behaved client would send."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def recv(self, timeout: float = 5.0) -> dict[str, Any] | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return msgpack.unpackb(self.sock.recv_multipart()[-1], raw=False)

    def ask(self, *frames: bytes, timeout: float = 5.0) -> dict[str, Any] | None:
        self.send(*frames)
        return self.recv(timeout)

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def raw(daemon: TestDaemon) -> Iterator[Raw]:
    r = Raw(daemon.cfg.control_endpoint)
    yield r
    r.close()


def request(cmd: str, token: str | None, args: dict[str, Any] | None = None, rid: Any = 1) -> bytes:
    req: dict[str, Any] = {"v": 1, "id": rid, "cmd": cmd, "token": token}
    if args is not None:
        req["args"] = args
    return msgpack.packb(req, use_bin_type=True)
