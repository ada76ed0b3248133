"""A real driver host with the real library, through a loopback proxy that never gets anywhere."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("neonize")

from tests.waiting import wait_until
from tests.whatsmeow.conftest import make_driver
from waz_actors.drivers.base import Disconnected
from waz_actors.drivers.whatsmeow import HOST_DIED


def test_a_pairing_that_never_completes_ends_at_its_deadline(make_pool, make_proxy, workdir):
    stall = make_proxy("stall")
    pool = make_pool()  # pairing_timeout 1 s; the stalled dial cannot be stopped
    drv, sink = make_driver(pool, "p1", stall.url, workdir)
    neighbour, sn = make_driver(pool, "p2", stall.url, workdir)
    neighbour.connect()
    host = pool.hosts[drv.host_id]
    wait_until(lambda: host.ready, timeout=15.0, what="the host ready")
    t0 = time.monotonic()
    drv.request_pair_code("+4915112345678")
    assert sink.wait(lambda evs: len(evs) >= 1)
    assert sink.events[0] == Disconnected(code=None, reason="pairing timed out", transient=False)
    assert 0.9 <= time.monotonic() - t0 < 5
    # stop() blocks on a stalled dial, so the host is killed: only its own sessions notice.
    wait_until(lambda: host.restarts == 1, timeout=15.0, what="one host restart")
    assert sn.wait(lambda evs: evs == [Disconnected(None, HOST_DIED, True)])
    assert sink.events == [Disconnected(code=None, reason="pairing timed out", transient=False)]
