"""A driver host that cannot be started (EAGAIN at systemd's TasksMax) is retried, not given up."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("neonize")

from tests.waiting import wait_until
from tests.whatsmeow.conftest import failed, make_driver
from waz_actors.config import parse
from waz_actors.drivers.base import DriverAlarm
from waz_actors.drivers.host import client
from waz_actors.drivers.host.client import HostPool


class FlakyPopen:
    """subprocess.Popen that fails with EAGAIN while `failures` is above zero."""

    def __init__(self) -> None:
        self.real = subprocess.Popen
        self.failures = 0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return self.real(*args, **kwargs)


def test_a_failed_spawn_is_retried_and_the_waiting_session_gets_its_host(
    monkeypatch: pytest.MonkeyPatch, offline: None, make_proxy, workdir: Path
):
    popen = FlakyPopen()
    monkeypatch.setattr(client.subprocess, "Popen", popen)
    # Daemon seconds last 50 ms here, so the backoff between spawn attempts is short.
    cfg = parse(
        {
            "daemon": {"time_scale": 0.05},
            "whatsmeow": {"sessions_per_host": 2, "heartbeat": 0.2, "heartbeat_misses": 5},
            "connection": {"timeout": 2000.0, "pairing_timeout": 1.0},
        }
    )
    pool = HostPool(cfg, workdir / "run", workdir / "state")
    pool.start()
    try:
        proxy = make_proxy("refuse")
        popen.failures = 2
        drv, sink = make_driver(pool, "s1", proxy.url, workdir)
        drv.connect()
        # The connect waits for the host and reaches it once a spawn succeeds.
        assert sink.wait(lambda evs: any(failed(e) for e in evs), timeout=60)
        assert popen.calls == 3 and len(proxy.requests) == 1
        [alarm] = [e for e in sink.events if isinstance(e, DriverAlarm)]
        assert alarm.kind == "driver_host_spawn_failed" and "retrying" in alarm.message
        # A host that dies and cannot be started again at once: the pool thread carries on.
        host = pool.hosts[drv.host_id]
        assert wait_until(lambda: host.ready, timeout=15.0)
        old_pid = host.pid
        popen.failures = 1
        os.kill(old_pid, signal.SIGKILL)
        assert wait_until(lambda: host.ready and host.pid != old_pid, timeout=60)
        assert popen.calls == 5 and pool._thread.is_alive()
        drv.connect()
        assert sink.wait(lambda evs: sum(failed(e) for e in evs) == 2, timeout=60)
        assert len(proxy.requests) == 2
    finally:
        pool.stop()
