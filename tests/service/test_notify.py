"""Notifier against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from waz_actors.app.notify import Notifier


def _receiver(address: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(address)
    s.settimeout(2.0)
    return s


def _recv(s: socket.socket) -> dict[str, str]:
    data = s.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    s = _receiver(path)
    yield s, path
    s.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"waz-test-{uuid.uuid4().hex}"
    s = _receiver("\0" + name)
    yield s, "@" + name
    s.close()


@pytest.mark.parametrize("which", ["path_socket", "abstract_socket"])
def test_helpers_send_the_systemd_fields(which: str, request: pytest.FixtureRequest) -> None:
    sock, env_value = request.getfixturevalue(which)
    n = Notifier.from_env({"NOTIFY_SOCKET": env_value})
    assert n.enabled
    assert n.ready()
    assert _recv(sock) == {"READY": "1"}
    assert n.status("3 online, 1 backoff\nsecond line")
    assert _recv(sock) == {"STATUS": "3 online, 1 backoff second line"}
    assert n.watchdog()
    assert _recv(sock) == {"WATCHDOG": "1"}
    assert n.stopping()
    assert _recv(sock) == {"STOPPING": "1"}
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    got = _recv(sock)
    assert got["RELOADING"] == "1"
    assert before <= int(got["MONOTONIC_USEC"]) <= before + 5_000_000
    assert n.extend_timeout(40.5)
    assert _recv(sock) == {"EXTEND_TIMEOUT_USEC": "40500000"}
    assert n.send(ready=True, status="x")
    assert _recv(sock) == {"READY": "1", "STATUS": "x"}
    n.close()


def test_silent_without_notify_socket() -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog() is False
    assert n.extend_timeout(1) is False
    assert n.watchdog_interval() is None


def test_unusable_notify_socket_values_are_ignored() -> None:
    for value in ("relative/path", "vsock:2:1234", ""):
        assert not Notifier.from_env({"NOTIFY_SOCKET": value}).enabled


def test_missing_socket_never_raises(tmp_path: Path) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert n.ready() is False  # ENOENT swallowed


def test_vanished_receiver_never_raises(tmp_path: Path) -> None:
    path = str(tmp_path / "n.sock")
    s = _receiver(path)
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.ready()
    s.close()  # the path still exists but nobody listens: ECONNREFUSED
    assert n.watchdog() is False


def test_full_receiver_does_not_block(path_socket: tuple[socket.socket, str]) -> None:
    _sock, path = path_socket
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    start = time.monotonic()
    results = [n.status("x" * 2000) for _ in range(2000)]  # nobody reads: the queue fills
    assert time.monotonic() - start < 5
    assert results[0] is True
    assert results[-1] is False  # EAGAIN, swallowed


def test_bad_input_is_a_clear_error_and_sends_nothing(
    path_socket: tuple[socket.socket, str],
) -> None:
    sock, path = path_socket
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    with pytest.raises(ValueError, match="seconds must be greater than 0"):
        n.extend_timeout(0)
    with pytest.raises(ValueError, match="seconds must be greater than 0"):
        n.extend_timeout(float("nan"))
    with pytest.raises(ValueError, match="field"):
        n.send(**{"BAD-NAME": 1})
    sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        sock.recv(4096)


def test_watchdog_interval_reads_usec_and_checks_pid() -> None:
    me = str(os.getpid())
    assert Notifier.from_env({"WATCHDOG_USEC": "30000000"}).watchdog_interval() == 30.0
    env = {"WATCHDOG_USEC": "500000", "WATCHDOG_PID": me}
    assert Notifier.from_env(env).watchdog_interval() == 0.5
    other = {"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_env(other).watchdog_interval() is None
    for bad in ("", "0", "-5", "soon"):
        assert Notifier.from_env({"WATCHDOG_USEC": bad}).watchdog_interval() is None


def test_unset_environment_hides_it_from_children(
    monkeypatch: pytest.MonkeyPatch, path_socket: tuple[socket.socket, str]
) -> None:
    sock, path = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    n = Notifier.from_env(unset_environment=True)
    assert "NOTIFY_SOCKET" not in os.environ and "WATCHDOG_USEC" not in os.environ
    assert n.watchdog_interval() == 1.0
    assert n.ready()
    assert _recv(sock) == {"READY": "1"}
