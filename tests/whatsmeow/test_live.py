"""Opt-in: pair a real phone and send one message (WAZ_LIVE=1; see docs/drivers.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("neonize")
if os.environ.get("WAZ_LIVE") != "1":
    pytest.skip("live WhatsApp test: set WAZ_LIVE=1 and WAZ_LIVE_TO", allow_module_level=True)

from tests.whatsmeow.conftest import make_driver
from waz_actors.config import parse
from waz_actors.drivers.base import Connected, OutgoingMessage, QrCode, SendResult
from waz_actors.drivers.host.client import HostPool


@pytest.mark.live
def test_pair_and_send_one_message(tmp_path: Path):
    import segno

    to = os.environ["WAZ_LIVE_TO"]
    cfg = parse({"connection": {"pairing_timeout": 300.0}})
    pool = HostPool(cfg, tmp_path / "run", tmp_path / "state")
    pool.start()
    try:
        drv, sink = make_driver(pool, "live", os.environ.get("WAZ_LIVE_PROXY", ""), tmp_path)
        drv.connect()
        shown: set[str] = set()

        def show_qr_until_connected(evs: list) -> bool:
            for e in evs:
                if isinstance(e, QrCode) and e.code not in shown:
                    shown.add(e.code)
                    segno.make_qr(e.code).terminal(compact=True)
            return any(isinstance(e, Connected) for e in evs)

        assert sink.wait(show_qr_until_connected, timeout=300)
        drv.send(OutgoingMessage("3EB0LIVE" + os.urandom(6).hex().upper(), to, text="waz live"))
        assert sink.wait(lambda evs: any(isinstance(e, SendResult) for e in evs), timeout=90)
        result = next(e for e in sink.events if isinstance(e, SendResult))
        assert result.ok, result.error
        drv.disconnect()
    finally:
        pool.stop()
