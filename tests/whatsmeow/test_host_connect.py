"""A real driver host with the real library, through a loopback proxy that never gets anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.whatsmeow.conftest import failed, make_driver
from waz_actors.drivers.base import Disconnected, OutgoingMessage, SendResult


def test_connect_through_refusing_proxy_fails_transiently(make_pool, make_proxy, workdir: Path):
    proxy = make_proxy("refuse")
    pool = make_pool()
    drv, sink = make_driver(pool, "a1", proxy.url, workdir)
    drv.connect()
    assert sink.wait(lambda evs: any(failed(e) for e in evs))
    ev = next(e for e in sink.events if isinstance(e, Disconnected))
    assert ev.transient and ev.code is None and "connection refused" in ev.reason
    # whatsmeow handed the hostname to the proxy: nothing was resolved or dialled elsewhere.
    assert proxy.requests and b"\x03\x10web.whatsapp.com\x01\xbb" in proxy.requests[0]
    # The session is over: a send is refused at once, a second connect makes a new attempt.
    drv.send(OutgoingMessage("m1", "123456789", text="hi"))
    assert sink.count(SendResult, message_id="m1", ok=False) == 1
    drv.connect()
    assert sink.wait(lambda evs: sum(failed(e) for e in evs) == 2)
    assert len(proxy.requests) == 2


def test_reset_proxy_fails_too(make_pool, make_proxy, workdir: Path):
    pool = make_pool()
    drv, sink = make_driver(pool, "r1", make_proxy("reset").url, workdir)
    drv.connect()
    assert sink.wait(lambda evs: any(failed(e) for e in evs))


def test_offline_mode_refuses_a_session_without_loopback_proxy(make_pool, workdir: Path):
    pool = make_pool()
    drv, sink = make_driver(pool, "n1", "", workdir)
    drv.connect()
    assert sink.wait(lambda evs: any(failed(e) for e in evs))
    assert "offline mode" in sink.events[0].reason  # type: ignore[union-attr]


def test_bad_input_is_refused_and_changes_nothing(make_pool, make_proxy, workdir: Path):
    pool = make_pool()
    drv, sink = make_driver(pool, "b1", make_proxy("refuse").url, workdir)
    with pytest.raises(ValueError, match="bad phone"):
        drv.request_pair_code("call me")
    drv.send(OutgoingMessage("m2", "123"))  # neither text nor media
    assert sink.events == [SendResult("m2", ok=False, error=sink.events[0].error, permanent=True)]
    with pytest.raises(ValueError, match="cannot name a session file"):
        make_driver(pool, "../etc", "", workdir)
    assert not (workdir / "state" / "whatsmeow").exists()
    assert pool.hosts[drv.host_id].restarts == 0
