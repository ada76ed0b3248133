"""The client examples of docs/protocol.md run against a live daemon with a tenant token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.control.conftest import TestDaemon
from waz_actors.control.client import Client

ROOT = Path(__file__).resolve().parents[2]


def env_for(daemon: TestDaemon, admin: Client) -> dict[str, str]:
    token = admin.token_create("shop", "example")["token"]
    with Client(daemon.cfg.control_endpoint, token) as tenant:
        tenant.instance_create("sim", "shop-1")
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WAZ_ENDPOINT": daemon.cfg.control_endpoint,
        "WAZ_TOKEN": token,
        "WAZ_INSTANCE": "shop-1",
    }


def check_output(out: str) -> None:
    assert "ping: daemon" in out
    assert "instance shop-1: stopped" in out
    assert "sent: 3EB0" in out and "queued" in out
    assert "(same id: yes)" in out or "(same id: True)" in out
    assert "bad input is refused: bad_request on field to" in out


def test_python_example(daemon: TestDaemon, admin: Client) -> None:
    env = env_for(daemon, admin)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python_client.py"), "5511988887777", "hi"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    check_output(proc.stdout)
    assert daemon.store.queue_stats("shop-1")["depth"] == 1  # the idempotent resend queued nothing


@pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed")
def test_php_example(daemon: TestDaemon, admin: Client) -> None:
    env = env_for(daemon, admin)
    proc = subprocess.run(
        ["php", str(ROOT / "examples" / "php_client.php"), "5511988887777", "hi"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_output(proc.stdout)
    assert daemon.store.queue_stats("shop-1")["depth"] == 1
