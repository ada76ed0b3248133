"""A failed driver-host spawn reaches daemon.alarm through HostPool's on_alarm, even when no
instance waits for that host (so no instance alarm can carry it)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.core.daemon_util import fast_config
from tests.waiting import wait_until
from tests.whatsmeow.conftest import Sink, make_driver
from tests.whatsmeow.test_host_spawn import FlakyPopen
from waz_actors.app.runtime import Daemon
from waz_actors.config import parse
from waz_actors.drivers.base import DriverAlarm, DriverContext
from waz_actors.drivers.host import client
from waz_actors.drivers.host.client import HostPool
from waz_actors.events import EventRecorder


def test_pool_reports_a_failed_spawn_with_nobody_waiting(
    monkeypatch: pytest.MonkeyPatch, offline: None, workdir: Path
) -> None:
    popen = FlakyPopen()
    popen.failures = 1_000
    monkeypatch.setattr(client.subprocess, "Popen", popen)
    cfg = parse({"daemon": {"time_scale": 0.05}, "whatsmeow": {"sessions_per_host": 2}})
    alarms: list[tuple[str, str]] = []
    pool = HostPool(
        cfg, workdir / "run", workdir / "state", on_alarm=lambda k, m: alarms.append((k, m))
    )
    pool.start()
    try:
        _, sink = make_driver(pool, "n1", "socks5://127.0.0.1:9", workdir)  # attached, not open
        wait_until(lambda: popen.calls >= 2, timeout=30, what="spawn retried")
        assert [k for k, _ in alarms] == ["driver_host_spawn_failed"]  # once per failure run
        assert "could not be started" in alarms[0][1]
        assert not [e for e in sink.events if isinstance(e, DriverAlarm)]  # nobody waits
    finally:
        pool.stop()


def test_daemon_alarm_for_a_failed_spawn(
    monkeypatch: pytest.MonkeyPatch, offline: None, workdir: Path
) -> None:
    popen = FlakyPopen()
    popen.failures = 1_000
    monkeypatch.setattr(client.subprocess, "Popen", popen)
    d = Daemon(fast_config(workdir), with_control=False)
    d.start()
    rec = EventRecorder(d.bus, "daemon.alarm")
    try:
        # A driver made and attached, never connected: its host's spawn fails with no
        # instance waiting.
        ctx = DriverContext(
            instance_id="n2", settings={}, state_dir=str(d.cfg.state_dir), sink=Sink()
        )
        d._whatsmeow_factory(ctx)
        assert rec.wait_for(lambda evs: len(evs) >= 1, timeout=30)
        [(_, body)] = rec.events
        assert body["kind"] == "driver_host_spawn_failed" and "instance_id" not in body
        assert any(a["kind"] == "driver_host_spawn_failed" for a in d.sweep.alarms)
    finally:
        rec.close()
        d.stop()
