"""The gateway as a service: supervised by the daemon, and its systemd unit."""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from tests.http.conftest import Stack, http
from tests.service.test_unit import _analyze
from tests.waiting import wait_until
from waz_actors.app.demo import DEMO_HTTP_LISTEN, demo_config
from waz_actors.config import Config
from waz_actors.http.supervise import gateway_command

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "waz-actors-http.service"
SHIPPED_BINARY = "/usr/local/bin/waz-actors"


def test_a_killed_gateway_is_started_again(stack: Stack) -> None:
    gw = stack.daemon.http
    assert gw is not None and gw.proc is not None
    first = gw.proc.pid
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: gw.proc is not None and gw.proc.pid != first, timeout=30,
               what="a new gateway process")  # fmt: skip

    def healthy() -> bool:
        try:
            return http("GET", stack.url("/healthz"), timeout=1).status == 200
        except OSError:
            return False

    wait_until(healthy, timeout=30, what="the new gateway answers")
    assert gw.starts >= 2


def test_demo_turns_the_gateway_on() -> None:
    cfg = demo_config(Config())
    assert cfg.http.listen == DEMO_HTTP_LISTEN == "127.0.0.1:8000"
    assert cfg.http.create_driver == "sim"
    cmd = gateway_command(cfg)
    assert cmd[cmd.index("--listen") + 1] == "127.0.0.1:8000"
    assert cmd[cmd.index("--endpoint") + 1] == cfg.control_endpoint


def _local_copy(tmp_path: Path) -> Path:
    exe = tmp_path / "waz-actors"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    text = UNIT.read_text()
    assert text.count(SHIPPED_BINARY) == 1
    unit = tmp_path / "waz-actors-http.service"
    unit.write_text(text.replace(SHIPPED_BINARY, str(exe)))
    return unit


needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


@needs_analyze
def test_unit_verifies_silently(tmp_path: Path) -> None:
    r = _analyze("verify", str(_local_copy(tmp_path)), cwd=tmp_path)
    assert (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr
    assert r.returncode == 0


@needs_analyze
def test_unit_exposure_at_most_the_daemons(tmp_path: Path) -> None:
    r = _analyze(
        "security", "--offline=yes", "--no-pager", str(_local_copy(tmp_path)), cwd=tmp_path
    )
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 3.0, r.stdout
