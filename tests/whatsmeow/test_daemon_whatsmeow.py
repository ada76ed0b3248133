"""whatsmeow instances inside a real Daemon: failures go through backoff to the breaker, a
killed host is a transient disconnect with the queue intact, and the daemon stays up.
Every session dials a refusing SOCKS5 proxy on 127.0.0.1 (nothing leaves the machine)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.core.daemon_util import send, state_of
from tests.waiting import wait_until
from waz_actors.app.runtime import Daemon
from waz_actors.config import Config


def wm_config(workdir: Path, proxy: str) -> Config:
    cfg = Config()
    return dataclasses.replace(
        cfg,
        daemon=dataclasses.replace(
            cfg.daemon,
            state_dir=str(workdir / "state"),
            runtime_dir=str(workdir / "run"),
            time_scale=0.01,
            connect_rate=1000.0,
        ),
        connection=dataclasses.replace(cfg.connection, timeout=3000.0),
        whatsmeow=dataclasses.replace(
            cfg.whatsmeow, proxy=proxy, sessions_per_host=2, heartbeat=0.3, heartbeat_misses=5
        ),
    )


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_refused_connects_back_off_then_trip(workdir: Path, make_proxy, offline) -> None:
    proxy = make_proxy("refuse")
    d = Daemon(wm_config(workdir, proxy.url), with_control=False)
    d.start()
    try:
        before = fds()
        d.fleet.create("wm1", "whatsmeow", "t1", {}, desired="running")
        wait_until(lambda: state_of(d, "wm1") == "backoff", timeout=30, what="backoff")
        wait_until(lambda: state_of(d, "wm1") == "tripped", timeout=60, what="tripped")
        snap = d.board.get("wm1")
        assert snap.connect_attempts == d.cfg.breaker.failure_threshold + 1
        assert proxy.requests, "the session did not go through the loopback proxy"
        assert d.fleet.supervisor_alive()
        assert fds() - before < 20  # the daemon itself leaks nothing per attempt
    finally:
        d.stop()


def test_killed_host_is_a_transient_disconnect_with_queue_intact(
    workdir: Path, make_proxy, offline
) -> None:
    proxy = make_proxy("stall")  # attempts hang in the host, as a slow network would
    d = Daemon(wm_config(workdir, proxy.url), with_control=False)
    d.start()
    try:
        d.fleet.create("wm1", "whatsmeow", "t1", {}, desired="running")
        wait_until(lambda: state_of(d, "wm1") == "connecting", timeout=30, what="connecting")
        ids = [send(d, "wm1", f"m{n}").message_id for n in range(3)]
        host = d.host_pool.host_of("wm1")
        assert host is not None
        d.host_pool.kill_host(host)
        wait_until(lambda: state_of(d, "wm1") == "backoff", timeout=30, what="backoff")
        snap = d.board.get("wm1")
        assert "host" in (snap.last_reason or "")
        assert snap.last_code != 440 and snap.conflicts.get("count", 0) == 0
        assert snap.queue_depth == 3
        # It tries again by itself (through the throttle), with the same queue.
        wait_until(lambda: state_of(d, "wm1") == "connecting", timeout=30, what="reconnect")
        d.store.flush(5)
        assert [d.store.get_message(i).status for i in ids] == ["queued"] * 3
    finally:
        d.stop()
