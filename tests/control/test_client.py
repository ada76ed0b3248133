"""Client library: timeouts, retry of read-only commands only, no mismatched late replies."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control.conftest import make_config
from tests.waiting import wait_until
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client, ClientError, Unreachable
from waz_actors.control.protocol import Registry
from waz_actors.control.server import ControlServer
from waz_actors.store import Store


class Counting:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {"ping": 0, "message.send": 0}
        self.release = threading.Event()
        self.registry = Registry()

        @self.registry.command("ping", readonly=True, blocking=True)
        def ping(ctx: Any) -> dict[str, Any]:
            self.calls["ping"] += 1
            self.release.wait(5)
            return {"pong": "late"}

        @self.registry.command("message.send", blocking=True)
        def send(ctx: Any) -> dict[str, Any]:
            self.calls["message.send"] += 1
            self.release.wait(5)
            return {"status": "queued"}

        @self.registry.command("instance.list", readonly=True)
        def list_(ctx: Any) -> dict[str, Any]:
            return {"instances": [{"marker": True}]}


@pytest.fixture
def setup(tmp_path: Path, short_dir: Path) -> Iterator[tuple[ControlServer, Counting]]:
    cfg = make_config(tmp_path / "state", short_dir / "run")
    cfg.state_dir.mkdir(parents=True)
    store = Store(cfg.db_path)
    store.open()
    counting = Counting()
    srv = ControlServer(cfg, None, store, None, registry=counting.registry)
    srv.start()
    yield srv, counting
    counting.release.set()
    srv.stop(timeout=2)
    store.close()


def test_missing_socket_is_unreachable_at_once(short_dir: Path) -> None:
    c = Client(f"ipc://{short_dir}/nothing.sock", "waz_x", timeout=5)
    t0 = time.monotonic()
    with pytest.raises(Unreachable) as e:
        c.ping()
    assert time.monotonic() - t0 < 1
    assert "nothing.sock" in str(e.value)


def test_readonly_commands_are_retried(setup: tuple[ControlServer, Counting]) -> None:
    srv, counting = setup
    tok = read_admin_token(srv.config.state_dir)
    with Client(srv.config.control_endpoint, tok, timeout=0.2, retries=2) as c:
        with pytest.raises(Unreachable):
            c.ping()
        wait_until(lambda: counting.calls["ping"] == 3)


def test_writes_are_never_retried(setup: tuple[ControlServer, Counting]) -> None:
    srv, counting = setup
    tok = read_admin_token(srv.config.state_dir)
    with Client(srv.config.control_endpoint, tok, timeout=0.2, retries=2) as c:
        with pytest.raises(Unreachable):
            c.call("message.send")
        assert counting.calls["message.send"] == 1
        # the late reply of the timed-out call must not be taken for the next answer
        counting.release.set()
        assert c.instance_list() == [{"marker": True}]
        assert c.instance_list() == [{"marker": True}]


def test_errors_carry_the_protocol_code(setup: tuple[ControlServer, Counting]) -> None:
    srv, _ = setup
    with Client(srv.config.control_endpoint, "waz_bad") as c, pytest.raises(ClientError) as e:
        c.instance_list()
    assert e.value.code == "unauthorized" and e.value.details == {"field": "token"}
    assert str(e.value).startswith("unauthorized:")


def test_client_imports_nothing_heavy() -> None:
    code = (
        "import sys, waz_actors.control.client\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pykka', 'loguru', 'neonize',"
        " 'sqlite3') or m.startswith(('waz_actors.store', 'waz_actors.actors'))]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
