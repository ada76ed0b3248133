"""A real driver host with the real library, through a loopback proxy that never gets anywhere."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.waiting import wait_until
from tests.whatsmeow.conftest import failed, make_driver
from waz_actors.drivers.base import Disconnected
from waz_actors.drivers.whatsmeow import HOST_DIED


def test_kill_9_of_a_host_disconnects_its_instances_and_restarts_it(
    make_pool, make_proxy, workdir: Path
):
    stall, refuse = make_proxy("stall"), make_proxy("refuse")
    pool = make_pool(sessions_per_host=2)
    a, sa = make_driver(pool, "k1", stall.url, workdir)
    b, sb = make_driver(pool, "k2", stall.url, workdir)
    c, sc = make_driver(pool, "k3", refuse.url, workdir)  # third instance: a second host
    assert a.host_id == b.host_id != c.host_id
    a.connect()
    b.connect()
    host, other = pool.hosts[a.host_id], pool.hosts[c.host_id]
    wait_until(lambda: host.ready and other.ready, timeout=15.0, what="both hosts ready")
    old_pid, other_pid = host.pid, other.pid
    os.kill(old_pid, signal.SIGKILL)
    for s in (sa, sb):
        assert s.wait(lambda evs: any(isinstance(e, Disconnected) for e in evs))
        assert s.events == [Disconnected(code=None, reason=HOST_DIED, transient=True)]
    wait_until(
        lambda: host.ready and host.pid != old_pid, timeout=15.0, what="a new host process ready"
    )
    assert other.pid == other_pid and other.restarts == 0 and sc.events == []
    # The instance reconnects through the new host (still going nowhere).
    a.disconnect()
    a2, sa2 = make_driver(pool, "k4", refuse.url, workdir)
    a2.connect()
    assert sa2.wait(lambda evs: any(failed(e) for e in evs))
