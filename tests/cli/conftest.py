"""One real daemon per test module (sim driver, real SQLite, ipc sockets in a short temp dir),
and a runner that drives the real `waz-actors` click command against it."""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.core.daemon_util import fast_config
from tests.waiting import wait_until
from waz_actors.app.runtime import Daemon
from waz_actors.cli.main import cli
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client

_ids = itertools.count(1)


class CliDaemon(Daemon):
    """The real runtime without the whatsmeow host pool (no phone in tests)."""

    __test__ = False

    @staticmethod
    def _whatsmeow_available() -> bool:
        return False


def start_daemon(base: Path, **sections: dict[str, Any]) -> CliDaemon:
    # Pairing waits are long enough for a test to scan the sim's QR code.
    sections.setdefault("connection", {}).setdefault("pairing_timeout", 10_000.0)
    d = CliDaemon(fast_config(base, instances=2, **sections))
    d.start()
    return d


@pytest.fixture(scope="module")
def short_dir() -> Iterator[Path]:
    # ipc paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    d = Path(tempfile.mkdtemp(prefix="wzc", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def daemon(short_dir: Path) -> Iterator[CliDaemon]:
    d = start_daemon(short_dir / "d")
    yield d
    d.stop(timeout=5)


@pytest.fixture(scope="module")
def admin(daemon: CliDaemon) -> Iterator[Client]:
    c = Client(daemon.cfg.control_endpoint, read_admin_token(daemon.cfg.state_dir), timeout=5)
    yield c
    c.close()


@dataclass
class Cli:
    env: dict[str, str]

    def __call__(self, *args: str, code: int = 0, input: str | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), env=self.env, input=input)
        detail = f"args {args}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"unexpected exception {result.exception!r}\n{detail}")
        assert result.exit_code == code, f"exit {result.exit_code} != {code}\n{detail}"
        return result


@pytest.fixture
def run(daemon: CliDaemon) -> Cli:
    """The CLI finding the daemon like an operator's shell would: endpoint from WAZ_ENDPOINT,
    the admin token from <state dir>/admin.token (WAZ_STATE_DIR)."""
    return Cli(
        {
            "WAZ_ENDPOINT": daemon.cfg.control_endpoint,
            "WAZ_STATE_DIR": str(daemon.cfg.state_dir),
            "WAZ_TOKEN": "",
            "WAZ_CONFIG": "",
            "WAZ_EVENTS_ENDPOINT": "",
        }
    )


@pytest.fixture
def fresh(admin: Client) -> Callable[..., str]:
    """A new sim instance per test (faults in one test must not leak into the next)."""

    def make(online: bool = True) -> str:
        iid = f"c{next(_ids)}"
        admin.instance_create("sim", iid)
        if online:
            admin.instance_start(iid)
            wait_until(lambda: admin.instance_get(iid)["state"] == "online", what=f"{iid} online")
        return iid

    return make


def later(delay_until: Callable[[], Any], action: Callable[[], Any]) -> threading.Thread:
    """Run `action` in a thread once `delay_until()` is true (polled): faults during a command."""

    def body() -> None:
        wait_until(delay_until, timeout=10, what="trigger")
        action()

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t


def someone_else_called(admin: Client) -> Callable[[], bool]:
    """A predicate that turns true once another client (the CLI under test) has sent the
    daemon a request: commands that follow events subscribe before their first request, so
    from then on an injected fault cannot go unseen."""
    base = admin.daemon_status()["control"]["received"]  # counts this call too
    own = itertools.count(1)

    def check() -> bool:
        return admin.daemon_status()["control"]["received"] > base + next(own)

    return check
