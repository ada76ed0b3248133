"""A real driver host with the real library, through a loopback proxy that never gets anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.waiting import wait_until
from tests.whatsmeow.conftest import failed, make_driver
from waz_actors.drivers.base import Disconnected
from waz_actors.drivers.whatsmeow import HOST_DIED


def test_fd_leak_is_bounded_by_restarting_the_host(make_pool, make_proxy, workdir: Path):
    proxy = make_proxy("refuse")
    pool = make_pool(fd_budget=60)
    drv, sink = make_driver(pool, "f1", proxy.url, workdir)
    host = pool.hosts[drv.host_id]
    wait_until(
        lambda: host.ready and host.fds > 0, timeout=15.0, what="the host ready with open fds"
    )
    baseline = host.fds
    # Each failed connect leaks one descriptor in the library; the budget restarts the host.
    for i in range(100):
        drv.connect()
        assert sink.wait(lambda evs, n=i + 1: sum(isinstance(e, Disconnected) for e in evs) == n)
        if host.restarts:
            break
    assert host.restarts == 1, f"baseline {baseline}, fds {host.fds}"
    wait_until(
        lambda: host.ready and 0 < host.fds < 60,
        timeout=15.0,
        what="the host ready with under 60 fds",
    )
    assert all(failed(e) or e.reason == HOST_DIED for e in sink.events)  # type: ignore[union-attr]
