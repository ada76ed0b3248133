"""SimDriver: one session at a time, and silence after disconnect() returns."""

from __future__ import annotations

import threading

import pytest

from tests.waiting import wait_until
from waz_actors.clock import RealClock, Scheduler
from waz_actors.config import SimConfig
from waz_actors.drivers.base import (
    Conflict,
    Connected,
    DriverContext,
    DriverEvent,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    SendResult,
)
from waz_actors.drivers.sim.driver import SimDriver, make_sim_factory, network_from_config
from waz_actors.drivers.sim.model import jid_for
from waz_actors.drivers.sim.network import SimNetwork

from .conftest import Recorder, settle


def make_driver(net: SimNetwork, iid: str = "A") -> tuple[SimDriver, Recorder]:
    rec = Recorder()
    ctx = DriverContext(instance_id=iid, settings={}, state_dir="/nonexistent", sink=rec)
    return SimDriver(ctx, net), rec


def msg(mid: str) -> OutgoingMessage:
    return OutgoingMessage(message_id=mid, to="5511999990000@s.whatsapp.net", text="hi")


def test_connect_send_and_a_second_connect_is_ignored(net: SimNetwork) -> None:
    drv, rec = make_driver(net)
    drv.connect()
    drv.connect()  # programming error: warned, no second session
    rec.wait_count(Connected)
    drv.send(msg("M1"))
    assert rec.wait_count(SendResult)[0] == SendResult("M1", ok=True, wa_id="M1")
    assert net.stats()["instances"]["A"]["connects"] == 1
    assert net.stats()["totals"]["conflicts_caused_by_ours"] == 0


def test_disconnect_is_idempotent_and_silences_pending_sends(
    scheduler: Scheduler, clock: RealClock
) -> None:
    net = SimNetwork(scheduler, clock, send_latency=300, lost_ack_delivery_rate=1.0)
    drv, rec = make_driver(net)
    drv.connect()
    rec.wait_count(Connected)
    for i in range(3):
        drv.send(msg(f"M{i}"))
    drv.disconnect()
    drv.disconnect()
    settle(scheduler, 350)
    assert rec.snapshot() == [Connected(jid_for("A"))]
    st = net.stats()["instances"]["A"]
    assert (st["lost_acks"], st["delivered"]) == (3, 3)  # the outcome was unknown, not lost


def test_disconnect_while_connecting_is_silent_and_frees_the_driver(
    net: SimNetwork, scheduler: Scheduler
) -> None:
    drv, rec = make_driver(net)
    drv.connect()
    drv.disconnect()
    settle(scheduler, net.connect_latency * 4)
    assert rec.snapshot() == []
    drv.connect()
    rec.wait_count(Connected)


def test_session_ended_by_network_allows_reconnect(net: SimNetwork) -> None:
    drv, rec = make_driver(net)
    drv.connect()
    rec.wait_count(Connected)
    net.inject("A", "conflict")
    rec.wait_count(Conflict)
    drv.connect()
    rec.wait_count(Connected, 2)
    st = net.stats()["instances"]["A"]
    assert (st["conflicts_injected"], st["conflicts_caused_by_ours"]) == (1, 0)


def test_two_drivers_of_one_instance_conflict(net: SimNetwork) -> None:
    a, rec_a = make_driver(net)
    b, rec_b = make_driver(net)
    a.connect()
    rec_a.wait_count(Connected)
    b.connect()
    rec_b.wait_count(Connected)
    rec_a.wait_count(Conflict)
    assert net.stats()["instances"]["A"]["conflicts_caused_by_ours"] == 1


def test_send_without_session_fails_transiently(net: SimNetwork) -> None:
    drv, rec = make_driver(net)
    drv.send(msg("M1"))
    assert rec.wait_count(SendResult)[0] == SendResult(
        "M1", ok=False, error="not connected", permanent=False
    )
    with pytest.raises(TypeError):
        drv.send("M1")  # type: ignore[arg-type]


def test_logout_then_pair_with_code(net: SimNetwork) -> None:
    drv, rec = make_driver(net)
    drv.connect()
    rec.wait_count(Connected)
    drv.logout()
    assert rec.wait_count(LoggedOut)[0] == LoggedOut("logged out")
    drv.request_pair_code("+5511999990000")  # opens the pairing connection itself
    assert rec.wait_count(PairCode)
    assert rec.of(QrCode)
    net.complete_pairing("A")
    rec.wait_count(Paired)
    rec.wait_count(Connected, 2)


def test_logout_without_session(net: SimNetwork) -> None:
    drv, rec = make_driver(net)
    drv.logout()
    assert rec.wait_count(LoggedOut)[0] == LoggedOut("logged out")
    drv.connect()
    rec.wait_count(QrCode)  # credentials gone: the next connect pairs


def test_bad_phone_is_refused_and_opens_nothing(net: SimNetwork) -> None:
    drv, _ = make_driver(net)
    for phone in ("", "abc", "+12", "1" * 16, "55 11 9999"):
        with pytest.raises(ValueError, match="phone"):
            drv.request_pair_code(phone)
    assert net.stats()["instances"] == {}
    assert drv.connected_session is None


def test_factory_and_config(net: SimNetwork, scheduler: Scheduler, clock: RealClock) -> None:
    rec = Recorder()
    drv = make_sim_factory(net)(DriverContext("F", {}, "/nonexistent", rec))
    assert isinstance(drv, SimDriver) and drv.instance_id == "F"
    cfg = SimConfig(connect_latency=0.1, send_latency=0.0, qr_interval=5, lost_ack_delivery_rate=0)
    built = network_from_config(cfg, scheduler, clock)
    assert isinstance(built, SimNetwork)
    assert (built.connect_latency, built.send_latency) == (0.1, 0.0)
    assert (built.qr_interval, built.lost_ack_delivery_rate) == (5.0, 0.0)


def test_no_event_escapes_after_disconnect_under_churn(
    scheduler: Scheduler, clock: RealClock
) -> None:
    """Connect/send/disconnect in a tight loop while the scheduler emits on its own thread."""
    net = SimNetwork(scheduler, clock, connect_latency=0.01, send_latency=0.01)
    closed = threading.Event()
    leaks: list[DriverEvent] = []
    seen = Recorder()

    def sink(event: DriverEvent) -> None:
        if closed.is_set():
            leaks.append(event)
        seen(event)

    drv = SimDriver(DriverContext("A", {}, "/nonexistent", sink), net)
    onlines = 0
    for i in range(200):
        closed.clear()
        drv.connect()
        if i % 3 == 0:  # sometimes let it get online, so sends are in flight too
            onlines += 1
            seen.wait_count(Connected, onlines)
        drv.send(msg(f"M{i}"))
        drv.disconnect()
        closed.set()
    settle(scheduler, 1)
    assert leaks == []
    assert seen.of(Conflict) == []
    assert net.stats()["instances"]["A"]["conflicts_caused_by_ours"] == 0


def test_media_fetched_once_and_not_sent_on_a_later_session(
    net: SimNetwork, scheduler: Scheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry re-uses what was fetched; a session closed during a fetch sends nothing."""
    from concurrent.futures import Future

    from tests.net.media_server import JPEG, MediaServer
    from waz_actors.drivers import media
    from waz_actors.net.fetch import Limits

    fetches: list[Future[None]] = []
    monkeypatch.setattr(media, "submit", lambda fn: fetches.append(media.workers().submit(fn)))
    server = MediaServer()
    try:
        rec = Recorder()
        ctx = DriverContext(instance_id="MD", settings={}, state_dir="/nonexistent", sink=rec)
        drv = SimDriver(ctx, net, Limits(allow_private=True, timeout=5.0))
        url = server.add("/a.jpg", JPEG)
        media_msg = OutgoingMessage("MM1", "5511999990000", media={"url": url})
        drv.connect()
        rec.wait_count(Connected)
        drv.send(media_msg)
        [first] = rec.wait_count(SendResult)
        assert first.ok and first.media is not None and first.media["size"] == len(JPEG)
        drv.send(media_msg)  # the same id again (a retry): nothing fetched
        results = rec.wait_count(SendResult, 2)
        assert results[1].media == first.media and server.hits["/a.jpg"] == 1
        assert net.delivered_media("MM1") == {**first.media}

        gate = threading.Event()
        server.add("/slow", lambda h, s: (gate.wait(5), h.wfile.write(JPEG)))
        drv.send(OutgoingMessage("MM2", "5511999990000", media={"url": server.url("/slow")}))
        wait_until(lambda: server.hits.get("/slow") == 1)
        drv.disconnect()
        drv.connect()  # a new session before the fetch ends
        rec.wait_count(Connected, 2)
        gate.set()
        fetches[-1].result(timeout=10)  # the fetch thread has decided
        settle(scheduler, 1.0)  # and a send it made would have been answered by now
        assert "MM2" not in net.delivered_ids("MD")
        assert all(e.message_id != "MM2" for e in rec.events if isinstance(e, SendResult))
    finally:
        server.close()
