"""The daemon as systemd sees it: a real `waz-actors run` process, a unix datagram socket
standing in for NOTIFY_SOCKET, and a file standing in for the journal stream."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.waiting import wait_until
from waz_actors.control.client import Client

CONFIG = """
[daemon]
time_scale = 0.01
shutdown_timeout = 10.0
{instances}
"""


def _instances(*ids: str) -> str:
    return "".join(f'[[instances]]\nid = "{i}"\ndriver = "sim"\n' for i in ids)


class Systemd:
    """Receives notifications and remembers every one, in order."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.seen: list[dict[str, str]] = []

    def expect(
        self, pred: Callable[[dict[str, str]], bool], timeout: float = 10.0
    ) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching notification; got {self.seen[-10:]}")
            self.sock.settimeout(left)
            try:
                raw = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            msg = dict(line.split("=", 1) for line in raw.split("\n"))
            self.seen.append(msg)
            if pred(msg):
                return msg


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Systemd, Path]]:
    systemd = Systemd(tmp_path / "notify.sock")
    config = tmp_path / "waz-actors.toml"
    config.write_text(CONFIG.format(instances=_instances("a1")))
    log = (tmp_path / "journal").open("wb")
    st = os.fstat(log.fileno())
    env = dict(
        os.environ,
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
        WATCHDOG_USEC="1000000",
        JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}",
    )
    cmd = [sys.executable, "-c", "from waz_actors.cli.main import main; main()", "run"]
    cmd += ["--config", str(config), "--state-dir", str(tmp_path / "state")]
    cmd += ["--runtime-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:
        yield proc, systemd, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
        systemd.sock.close()


def test_service_lifecycle(daemon: tuple[subprocess.Popen[bytes], Systemd, Path]) -> None:
    proc, systemd, tmp = daemon
    systemd.expect(lambda m: m.get("READY") == "1", timeout=20)
    token = (tmp / "state" / "admin.token").read_text().strip()
    endpoint = f"ipc://{(tmp / 'run').resolve()}/control.sock"
    with Client(endpoint, token, timeout=2.0) as c:
        assert c.ping()["pong"] is True  # READY=1 came only once this answers
        systemd.expect(lambda m: "1 online" in m.get("STATUS", ""))
        systemd.expect(lambda m: m.get("WATCHDOG") == "1", timeout=3)

        # A broken file is refused, the old config stays, the daemon keeps answering.
        config = tmp / "waz-actors.toml"
        config.write_text("[daemon]\nhealth_swep = 3\n")
        proc.send_signal(signal.SIGHUP)
        systemd.expect(lambda m: m.get("RELOADING") == "1" and "MONOTONIC_USEC" in m)
        systemd.expect(lambda m: m.get("READY") == "1")
        assert [i["instance_id"] for i in c.instance_list()] == ["a1"]

        # One instance added, one removed: each changes alone.
        config.write_text(CONFIG.format(instances=_instances("a2")))
        proc.send_signal(signal.SIGHUP)
        systemd.expect(lambda m: m.get("RELOADING") == "1")
        systemd.expect(lambda m: m.get("READY") == "1")

        def states() -> dict[str, str]:
            return {i["instance_id"]: i["state"] for i in c.instance_list()}

        wait_until(
            lambda: states() == {"a1": "stopped", "a2": "online"},
            timeout=10.0,
            what="a1 stopped and a2 online",
        )

    journal = tmp / "journal"
    proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: "stack dump" in journal.read_text(), timeout=10.0, what="the stack dump")

    proc.send_signal(signal.SIGTERM)
    systemd.expect(lambda m: m.get("STOPPING") == "1")
    systemd.expect(lambda m: "EXTEND_TIMEOUT_USEC" in m)
    assert proc.wait(15) == 0

    lines = journal.read_text().splitlines()
    assert lines and all(line[:1] == "<" and line[2] == ">" for line in lines), lines[:5]
    assert any(line.startswith("<6>INFO    [a2] ") for line in lines)
    rejected = [line for line in lines if "health_swep" in line]
    assert rejected and rejected[0].startswith("<3>ERROR")
    assert token not in journal.read_text()
    watchdogs = [i for i, m in enumerate(systemd.seen) if m.get("WATCHDOG")]
    ready = next(i for i, m in enumerate(systemd.seen) if m.get("READY"))
    assert not any(i < ready for i in watchdogs)  # nothing is fed before READY
