"""The signature checks of docs/webhooks.md (examples/webhook_verify.php and .py) accept a real
delivery and refuse a tampered one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.control.dispatch_util import Core
from tests.waiting import wait_until
from tests.webhooks.receiver import Hit, Receiver

ROOT = Path(__file__).resolve().parents[2]


def delivered(hooked: Core, receiver: Receiver) -> tuple[str, Hit]:
    acme = hooked.tenant("acme")
    made = acme.ok("webhook.create", url=receiver.url())
    acme.ok("webhook.test", webhook_id=made["webhook_id"])
    wait_until(lambda: len(receiver.hits) == 1)
    return made["secret"], receiver.hits[0]


def run(cmd: list[str], secret: str, raw: bytes, header: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "WAZ_WEBHOOK_SECRET": secret}
    return subprocess.run([*cmd, header], input=raw, env=env, capture_output=True, timeout=30)


def check(cmd: list[str], secret: str, hit: Hit) -> None:
    header = hit.headers["x-waz-signature"]
    good = run(cmd, secret, hit.raw, header)
    assert good.returncode == 0 and good.stdout.strip() == b"valid", good
    assert run(cmd, secret, hit.raw + b" ", header).returncode == 1  # body changed
    assert run(cmd, "another secret here!", hit.raw, header).returncode == 1
    assert run(cmd, secret, hit.raw, "sha256=" + "0" * 64).returncode == 1


def test_python_snippet(hooked: Core, receiver: Receiver) -> None:
    secret, hit = delivered(hooked, receiver)
    check([sys.executable, str(ROOT / "examples" / "webhook_verify.py")], secret, hit)


@pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed")
def test_php_snippet(hooked: Core, receiver: Receiver) -> None:
    secret, hit = delivered(hooked, receiver)
    check(["php", str(ROOT / "examples" / "webhook_verify.php")], secret, hit)
