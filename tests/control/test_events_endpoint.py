"""control.events_endpoint follows the rule of control.tcp_endpoints: off loopback only with
CURVE (issue 11 item 7)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
import zmq.auth

from tests.control.conftest import make_config
from tests.control.test_server import Tiny, free_port
from waz_actors.control.server import ControlServer
from waz_actors.control.sockets import plan
from waz_actors.errors import ConfigError
from waz_actors.events import EventBus
from waz_actors.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db.sqlite")
    s.open()
    yield s
    s.close()


@pytest.mark.parametrize("ep", ["tcp://0.0.0.0:5598", "tcp://*:5598", "tcp://192.0.2.1:5598"])
def test_events_endpoint_off_loopback_needs_curve(
    tmp_path: Path, short_dir: Path, store: Store, ep: str
) -> None:
    cfg = make_config(tmp_path / "state", short_dir / "run", control={"events_endpoint": ep})
    with pytest.raises(ConfigError, match=r"events_endpoint: .* CURVE"):
        plan(cfg)
    srv = ControlServer(cfg, None, store, None, registry=Tiny().registry)
    with pytest.raises(ConfigError, match="CURVE"):
        srv.start()
    assert not Path(cfg.control_endpoint[6:]).exists()  # nothing was bound


def test_events_endpoint_on_loopback_stays_plain(
    tmp_path: Path, short_dir: Path, store: Store
) -> None:
    ep = f"tcp://127.0.0.1:{free_port()}"
    cfg = make_config(tmp_path / "state", short_dir / "run", control={"events_endpoint": ep})
    plan(cfg)  # no error


def test_events_endpoint_off_loopback_uses_curve(
    tmp_path: Path, short_dir: Path, store: Store
) -> None:
    keys, clients = tmp_path / "keys", tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    os.rename(client_public, clients / "client.key")
    port = free_port()
    cfg = make_config(
        tmp_path / "state",
        short_dir / "run",
        control={
            "events_endpoint": f"tcp://0.0.0.0:{port}",
            "curve_secret_key_file": server_secret,
            "curve_clients_dir": str(clients),
        },
    )
    bus = EventBus()
    srv = ControlServer(cfg, None, store, bus, registry=Tiny().registry)
    srv.start()
    ctx = zmq.Context.instance()
    good = ctx.socket(zmq.SUB)
    plain = ctx.socket(zmq.SUB)
    try:
        server_pub, _ = zmq.auth.load_certificate(server_secret)
        good.curve_serverkey = server_pub
        good.curve_publickey, good.curve_secretkey = zmq.auth.load_certificate(client_secret)
        for sock in (good, plain):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(f"tcp://127.0.0.1:{port}")
        got = False
        for _ in range(100):  # a SUB joins late: publish until the keyed one hears
            bus.publish("daemon.test", {"n": 1})
            if good.poll(50, zmq.POLLIN):
                got = True
                break
        assert got
        assert not plain.poll(200, zmq.POLLIN)  # no key: the handshake fails, nothing arrives
    finally:
        good.close(0)
        plain.close(0)
        srv.stop(timeout=2)
