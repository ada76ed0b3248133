"""The socket loop itself, with a tiny handler table: no head-of-line blocking, a clean stop,
events on PUB, file modes, CURVE."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from tests.control.conftest import Raw, make_config, request
from tests.waiting import wait_until
from waz_actors.config import Config
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client, ClientError, EventStream, Unreachable
from waz_actors.control.protocol import Registry
from waz_actors.control.server import ControlServer, is_loopback
from waz_actors.errors import ConfigError
from waz_actors.events import EventBus
from waz_actors.store import Store


class Tiny:
    """A handler table whose slow command waits for the test to release it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.registry = Registry()
        reg = self.registry

        @reg.command("ping", readonly=True)
        def ping(ctx: Any) -> dict[str, Any]:
            return {"pong": True}

        @reg.command("slow", blocking=True)
        def slow(ctx: Any) -> dict[str, Any]:
            self.entered.set()
            assert self.release.wait(10)
            return {"slow": True}

        @reg.command("later")
        def later(ctx: Any) -> Future[dict[str, Any]]:
            f: Future[dict[str, Any]] = Future()
            threading.Timer(0.01, lambda: f.set_result({"later": True})).start()
            return f

        @reg.command("boom", readonly=True)
        def boom(ctx: Any) -> dict[str, Any]:
            raise RuntimeError("handler bug")

        @reg.command("unpackable", readonly=True)
        def unpackable(ctx: Any) -> dict[str, Any]:
            return {"x": object()}


@pytest.fixture
def cfg(tmp_path: Path, short_dir: Path) -> Config:
    return make_config(tmp_path / "state", short_dir / "run")


@pytest.fixture
def store(cfg: Config) -> Iterator[Store]:
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    s = Store(cfg.db_path)
    s.open()
    yield s
    s.close()


@pytest.fixture
def tiny() -> Iterator[Tiny]:
    t = Tiny()
    yield t
    t.release.set()


@pytest.fixture
def server(cfg: Config, store: Store, tiny: Tiny) -> Iterator[ControlServer]:
    srv = ControlServer(cfg, None, store, EventBus(), registry=tiny.registry)
    srv.start()
    yield srv
    tiny.release.set()
    srv.stop(timeout=2)


def client(srv: ControlServer, timeout: float = 5.0) -> Client:
    return Client(srv.config.control_endpoint, read_admin_token(srv.config.state_dir), timeout)


def test_slow_command_does_not_delay_fast_ones(server: ControlServer, tiny: Tiny) -> None:
    raw = Raw(server.config.control_endpoint)
    tok = read_admin_token(server.config.state_dir)
    raw.send(request("slow", tok, rid="slow"))
    assert tiny.entered.wait(5)
    for i in range(50):
        assert raw.ask(request("ping", tok, rid=i))["id"] == i
    assert raw.ask(request("later", tok, rid="later"))["result"] == {"later": True}
    tiny.release.set()
    assert raw.recv()["result"] == {"slow": True}
    raw.close()


def test_handler_bugs_answer_internal_and_keep_serving(server: ControlServer) -> None:
    with client(server) as c:
        for cmd in ("boom", "unpackable"):
            with pytest.raises(ClientError) as e:
                c.call(cmd)
            assert e.value.code == "internal"
        assert c.ping()["pong"]


def test_stop_finishes_inflight_and_refuses_new(server: ControlServer, tiny: Tiny) -> None:
    raw = Raw(server.config.control_endpoint)
    tok = read_admin_token(server.config.state_dir)
    raw.send(request("slow", tok, rid="slow"))
    assert tiny.entered.wait(5)
    stopper = threading.Thread(target=server.stop, kwargs={"timeout": 5})
    stopper.start()
    with client(server) as c:
        # stop() waits for the in-flight request; meanwhile new ones are refused
        def refused() -> bool:
            try:
                c.ping()
            except ClientError as e:
                return e.code == "shutting_down"
            return False

        wait_until(refused)
    tiny.release.set()
    assert raw.recv()["result"] == {"slow": True}
    stopper.join(5)
    assert not stopper.is_alive()
    assert not Path(server.config.control_endpoint[6:]).exists()
    raw.close()


def test_events_are_published(server: ControlServer) -> None:
    assert server.bus is not None
    with EventStream(server.events_endpoint, ["instance."]) as events:
        # PUB/SUB joins asynchronously: publish until the subscription is live
        def seen() -> Any:
            server.bus.publish("instance.a1.state", {"state": "online", "time": 1.0})
            return events.recv(timeout=0.05)

        topic, body = wait_until(seen)
        assert topic == "instance.a1.state" and body["state"] == "online"
        server.bus.publish("daemon.alarm", {"x": 1})  # filtered by the subscription
        server.bus.publish("instance.a1.conflict", {"code": 440})
        while (got := events.recv(timeout=2)) is not None and got[0] == "instance.a1.state":
            pass
        assert got == ("instance.a1.conflict", {"code": 440})


def test_event_bus_never_blocks_on_the_socket(server: ControlServer) -> None:
    assert server.bus is not None
    t0 = time.perf_counter()
    for i in range(20_000):
        server.bus.publish("message.x.status", {"i": i})
    assert time.perf_counter() - t0 < 2
    wait_until(lambda: server.stats()["pending_events"] == 0)
    st = server.stats()
    assert st["events_published"] + st["events_dropped"] == 20_000


def test_file_modes(server: ControlServer) -> None:
    cfg = server.config
    sock = Path(cfg.control_endpoint[6:])
    assert stat.S_IMODE(sock.stat().st_mode) == 0o660
    assert stat.S_IMODE(Path(cfg.events_endpoint[6:]).stat().st_mode) == 0o660
    assert stat.S_IMODE((cfg.state_dir / "admin.token").stat().st_mode) == 0o600


def test_off_loopback_tcp_needs_curve(tmp_path: Path, short_dir: Path, store: Store) -> None:
    for ep in ("tcp://0.0.0.0:5599", "tcp://*:5599", "tcp://192.0.2.1:5599"):
        assert not is_loopback(ep)
    for ep in ("tcp://127.0.0.1:1", "tcp://localhost:1", "tcp://[::1]:1", "ipc:///x"):
        assert is_loopback(ep)
    cfg = make_config(
        tmp_path / "state", short_dir / "run", control={"tcp_endpoints": ["tcp://0.0.0.0:5599"]}
    )
    srv = ControlServer(cfg, None, store, None, registry=Tiny().registry)
    with pytest.raises(ConfigError, match="CURVE"):
        srv.start()
    assert not Path(cfg.control_endpoint[6:]).exists()  # nothing was bound


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_curve_on_tcp(tmp_path: Path, short_dir: Path, store: Store, tiny: Tiny) -> None:
    keys, clients = tmp_path / "keys", tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    os.rename(client_public, clients / "client.key")
    _, stranger_secret = zmq.auth.create_certificates(keys, "stranger")
    ep = f"tcp://127.0.0.1:{free_port()}"
    cfg = make_config(
        tmp_path / "state",
        short_dir / "run",
        control={
            "tcp_endpoints": [ep],
            "curve_secret_key_file": server_secret,
            "curve_clients_dir": str(clients),
        },
    )
    srv = ControlServer(cfg, None, store, None, registry=tiny.registry)
    srv.start()
    try:
        server_pub, _ = zmq.auth.load_certificate(server_secret)
        tok = read_admin_token(cfg.state_dir)
        with Client(
            ep,
            tok,
            curve_server_key=server_pub,
            curve_keypair=zmq.auth.load_certificate(client_secret),
        ) as good:
            assert good.ping()["pong"]
        with (
            Client(
                ep,
                tok,
                timeout=0.3,
                retries=0,
                curve_server_key=server_pub,
                curve_keypair=zmq.auth.load_certificate(stranger_secret),
            ) as bad,
            pytest.raises(Unreachable),
        ):
            bad.ping()
        with Client(ep, tok, timeout=0.3, retries=0) as plain, pytest.raises(Unreachable):
            plain.ping()
        with client(srv) as local:  # ipc stays plain
            assert local.ping()["pong"]
    finally:
        srv.stop(timeout=2)


def test_curve_secret_file_without_secret(tmp_path: Path, short_dir: Path, store: Store) -> None:
    public_file, _ = zmq.auth.create_certificates(tmp_path, "server")
    cfg = make_config(
        tmp_path / "state",
        short_dir / "run",
        control={
            "tcp_endpoints": [f"tcp://127.0.0.1:{free_port()}"],
            "curve_secret_key_file": public_file,
            "curve_clients_dir": str(tmp_path),
        },
    )
    srv = ControlServer(cfg, None, store, None, registry=Tiny().registry)
    with pytest.raises(ConfigError, match=r"curve_secret_key_file: .*no secret key"):
        srv.start()
    assert not Path(cfg.control_endpoint[6:]).exists()  # nothing left bound
