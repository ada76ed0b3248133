"""SimNetwork: the one-live-session rule, exactly-once counting, faults, pairing, stats."""

from __future__ import annotations

import random
import re

import pytest

from waz_actors.clock import FakeClock, RealClock, Scheduler
from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    Receipt,
    SendResult,
)
from waz_actors.drivers.sim.faults import FAULT_KINDS
from waz_actors.drivers.sim.model import jid_for
from waz_actors.drivers.sim.network import SimNetwork

from .conftest import Recorder, settle


def msg(mid: str, to: str = "5511999990000@s.whatsapp.net") -> OutgoingMessage:
    return OutgoingMessage(message_id=mid, to=to, text="hi")


def live(net: SimNetwork, iid: str = "A") -> tuple[object, Recorder]:
    rec = Recorder()
    session = net.open_session(iid, rec)
    rec.wait_count(Connected)
    return session, rec


def test_connect_gives_stable_jid_and_counts_attempts(net: SimNetwork) -> None:
    s1, rec1 = live(net)
    s1.close()
    _, rec2 = live(net)
    assert rec1.of(Connected) == rec2.of(Connected) == [Connected(jid_for("A"))]
    assert re.fullmatch(r"\d+@s\.whatsapp\.net", jid_for("A"))
    assert net.stats()["instances"]["A"]["connects"] == 2
    assert net.stats()["totals"]["conflicts_caused_by_ours"] == 0


def test_second_session_kicks_the_first_counted_as_ours(net: SimNetwork) -> None:
    s1, rec1 = live(net)
    s2, _ = live(net)
    rec1.wait_count(Conflict)
    assert rec1.snapshot() == [Connected(jid_for("A")), Conflict()]
    assert s2.live and not s1.live
    st = net.stats()["instances"]["A"]
    assert st["conflicts_caused_by_ours"] == 1
    assert st["conflicts_injected"] == 0


def test_two_connecting_sessions_fight(net: SimNetwork) -> None:
    rec1, rec2 = Recorder(), Recorder()
    net.open_session("A", rec1)
    net.open_session("A", rec2)
    rec2.wait_count(Connected)
    rec1.wait_count(Conflict)
    assert net.stats()["instances"]["A"]["conflicts_caused_by_ours"] == 1


def test_sessions_of_different_instances_do_not_conflict(net: SimNetwork) -> None:
    live(net, "A")
    live(net, "B")
    assert net.stats()["totals"]["conflicts_caused_by_ours"] == 0


def test_injected_conflict_is_counted_apart(net: SimNetwork) -> None:
    s1, rec1 = live(net)
    net.inject("A", "conflict")
    rec1.wait_count(Conflict)
    assert not s1.live
    live(net)  # reconnecting after the other device took over is not our conflict
    st = net.stats()["instances"]["A"]
    assert (st["conflicts_injected"], st["conflicts_caused_by_ours"]) == (1, 0)
    assert net.stats()["faults"] == {"conflict": 1}


def test_duplicate_ids_are_counted_not_delivered(net: SimNetwork) -> None:
    s, rec = live(net)
    s.send(msg("M1"))
    s.send(msg("M1"))
    s.send(msg("M2", to="x@s.whatsapp.net"))
    results = rec.wait_count(SendResult, 3)
    assert all(r.ok and r.wa_id == r.message_id for r in results)
    st = net.stats()["instances"]["A"]
    assert (st["delivered"], st["duplicates"]) == (2, 1)
    assert net.delivered_ids("A") == ["M1", "M2"]
    assert net.delivered_ids("B") == []
    log = net.delivered_log()
    assert [(e["message_id"], e["instance_id"], e["to"]) for e in log] == [
        ("M1", "A", "5511999990000@s.whatsapp.net"),
        ("M2", "A", "x@s.whatsapp.net"),
    ]
    assert all(isinstance(e["time"], float) for e in log)


def test_resend_from_another_session_is_still_a_duplicate(net: SimNetwork) -> None:
    s1, rec1 = live(net)
    s1.send(msg("M1"))
    rec1.wait_count(SendResult)
    s1.close()
    s2, rec2 = live(net)
    s2.send(msg("M1"))
    assert rec2.wait_count(SendResult)[0].ok
    assert net.stats()["instances"]["A"]["duplicates"] == 1
    assert net.delivered_ids("A") == ["M1"]


def test_send_before_connected_fails_transiently(net: SimNetwork) -> None:
    rec = Recorder()
    s = net.open_session("A", rec)
    s.send(msg("M1"))
    first = rec.wait_count(SendResult)[0]
    assert first == SendResult("M1", ok=False, error="not connected", permanent=False)
    assert net.stats()["instances"]["A"]["sends_failed"] == 1
    assert net.delivered_ids("A") == []


@pytest.mark.parametrize(("rate", "delivered"), [(1.0, 1), (0.0, 0)])
def test_pending_send_when_session_drops_loses_its_answer(
    scheduler: Scheduler, clock: RealClock, rate: float, delivered: int
) -> None:
    net = SimNetwork(scheduler, clock, send_latency=300, lost_ack_delivery_rate=rate)
    s, rec = live(net)
    s.send(msg("M1"))
    net.inject("A", "disconnect")
    rec.wait_count(Disconnected)
    settle(scheduler, 350)  # past the send's latency
    assert rec.of(SendResult) == []
    st = net.stats()["instances"]["A"]
    assert (st["lost_acks"], st["lost_ack_delivered"], st["delivered"]) == (1, delivered, delivered)


def test_lost_ack_delivery_rate_is_roughly_honoured(scheduler: Scheduler, clock: RealClock) -> None:
    net = SimNetwork(scheduler, clock, send_latency=500, rand=random.Random(3))
    s, _ = live(net)
    for i in range(200):
        s.send(msg(f"M{i}"))
    s.close()
    settle(scheduler, 600)
    st = net.stats()["instances"]["A"]
    assert st["lost_acks"] == 200
    assert 60 <= st["lost_ack_delivered"] <= 140


def test_close_means_silence_even_with_pending_work(scheduler: Scheduler, clock: RealClock) -> None:
    net = SimNetwork(scheduler, clock, send_latency=300, auto_pair=True)
    s, rec = live(net)
    for i in range(5):
        s.send(msg(f"M{i}"))
    s.close()
    s.close()  # idempotent
    net.inject("A", "ban", duration=1)  # would emit Banned to a live session
    settle(scheduler, 350)
    assert rec.snapshot() == [Connected(jid_for("A"))]
    assert net.stats()["instances"]["A"]["lost_acks"] == 5


def test_close_stops_qr_codes(scheduler: Scheduler, clock: RealClock) -> None:
    net = SimNetwork(scheduler, clock, qr_interval=5, auto_pair=False)
    rec = Recorder()
    s = net.open_session("A", rec)
    rec.wait_count(QrCode, 2)
    s.close()
    seen = len(rec.snapshot())
    settle(scheduler, 30)
    assert len(rec.snapshot()) == seen


# --- faults -----------------------------------------------------------------------------------


def test_disconnect_fault(net: SimNetwork) -> None:
    s, rec = live(net)
    net.inject("A", "disconnect")
    ev = rec.wait_count(Disconnected)[0]
    assert ev == Disconnected(code=428, reason="connection closed", transient=True)
    assert not s.live
    live(net)


def test_logout_fault_on_live_session_then_pairing_connect(net: SimNetwork) -> None:
    _, rec = live(net)
    net.inject("A", "logout")
    assert rec.wait_count(LoggedOut)[0] == LoggedOut("device removed")
    rec2 = Recorder()
    net.open_session("A", rec2)
    assert rec2.wait_count(QrCode)
    assert rec2.of(Connected) == []


def test_logout_fault_offline_revokes_credentials(net: SimNetwork) -> None:
    s, _ = live(net)
    s.close()
    net.inject("A", "logout")
    rec = Recorder()
    net.open_session("A", rec)
    assert rec.wait_count(LoggedOut)[0] == LoggedOut("device removed")
    rec2 = Recorder()
    net.open_session("A", rec2)
    rec2.wait_count(QrCode)
    with pytest.raises(ValueError, match="not paired"):
        net.inject("A", "logout")


def test_ban_refuses_connects_until_expiry(scheduler: Scheduler) -> None:
    fake = FakeClock()
    net = SimNetwork(scheduler, fake, connect_latency=0.001, send_latency=0.001)
    _, rec = live(net)
    net.inject("A", "ban", duration=600)
    banned = rec.wait_count(Banned)[0]
    assert banned.until == fake.now() + 600
    rec2 = Recorder()
    net.open_session("A", rec2)
    assert rec2.wait_count(Banned)[0].until == banned.until
    fake.advance(601)
    live(net)


def test_send_fail_fault(net: SimNetwork) -> None:
    s, rec = live(net)
    net.inject("A", "send_fail", count=2, permanent=True)
    net.inject("A", "send_fail")
    for i in range(4):
        s.send(msg(f"M{i}"))
    results = rec.wait_count(SendResult, 4)
    assert [(r.ok, r.permanent) for r in results] == [
        (False, True),
        (False, True),
        (False, False),
        (True, False),
    ]
    assert results[0].error == "send failed (injected)"
    st = net.stats()["instances"]["A"]
    assert (st["sends_failed"], st["delivered"]) == (3, 1)
    assert net.delivered_ids("A") == ["M3"]


def test_latency_fault(net: SimNetwork, clock: RealClock) -> None:
    net.inject("A", "latency", connect=200, send=100)
    rec = Recorder()
    t0 = clock.now()
    s = net.open_session("A", rec)
    rec.wait_count(Connected)
    t1 = clock.now()
    s.send(msg("M1"))
    rec.wait_count(SendResult)
    assert t1 - t0 >= 200
    assert clock.now() - t1 >= 100
    _, other = live(net, "B")  # other instances keep the network's latency
    assert other.of(Connected)


def test_connect_fail_fault(net: SimNetwork) -> None:
    net.inject("A", "connect_fail", count=2)
    for _ in range(2):
        rec = Recorder()
        net.open_session("A", rec)
        ev = rec.wait_count(Disconnected)[0]
        assert ev.transient and rec.of(Connected) == []
    live(net)
    assert net.stats()["instances"]["A"]["connects"] == 3


def test_hang_fault_never_answers(net: SimNetwork, scheduler: Scheduler) -> None:
    net.inject("A", "hang")
    rec = Recorder()
    s = net.open_session("A", rec)
    settle(scheduler, net.connect_latency * 20)
    assert rec.snapshot() == []
    s.close()  # the daemon's connection timeout gives up
    live(net)
    assert net.stats()["instances"]["A"]["conflicts_caused_by_ours"] == 0


def test_hung_session_left_open_is_replaced_as_a_conflict(net: SimNetwork) -> None:
    net.inject("A", "hang")
    rec = Recorder()
    net.open_session("A", rec)
    live(net)  # the daemon forgot to close the hung attempt: that is our bug, counted
    assert rec.snapshot() == []
    assert net.stats()["instances"]["A"]["conflicts_caused_by_ours"] == 1


@pytest.mark.parametrize(
    ("kind", "params", "match"),
    [
        ("explode", {}, "unknown fault kind 'explode'; kinds: " + ", ".join(FAULT_KINDS)),
        ("ban", {"duration": 0}, "duration must be > 0"),
        ("ban", {"duration": "long"}, "duration must be a number"),
        ("ban", {"until": 5}, "unknown parameter"),
        ("send_fail", {"count": 0}, "count must be an integer"),
        ("send_fail", {"count": 1.5}, "count must be an integer"),
        ("send_fail", {"permanent": "yes"}, "permanent must be true or false"),
        ("latency", {}, "give connect and/or send"),
        ("latency", {"send": -1}, "send must be >= 0"),
        ("conflict", {}, "no live session"),
        ("disconnect", {}, "no live session"),
    ],
)
def test_bad_faults_raise_and_change_nothing(
    net: SimNetwork, kind: str, params: dict, match: str
) -> None:
    rec = Recorder()
    net.open_session("A", rec)  # still connecting: not live
    before = net.stats()
    with pytest.raises(ValueError, match=re.escape(match) if kind == "explode" else match):
        net.inject("A", kind, **params)
    assert net.stats() == before
    rec.wait_count(Connected)  # the session was not disturbed
    with pytest.raises(ValueError, match="instance_id"):
        net.inject("", "conflict")


def test_bad_send_and_session_input(net: SimNetwork) -> None:
    s, _ = live(net)
    with pytest.raises(TypeError, match="OutgoingMessage"):
        s.send({"message_id": "M1"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="message_id"):
        s.send(msg(""))
    with pytest.raises(ValueError, match="instance_id"):
        net.open_session("", Recorder())
    with pytest.raises(ValueError, match="phone"):
        s.request_pair_code("12ab")
    assert net.stats()["instances"]["A"]["connects"] == 1
    with pytest.raises(ValueError, match="lost_ack_delivery_rate"):
        SimNetwork(net.scheduler, net.clock, lost_ack_delivery_rate=2)
    with pytest.raises(ValueError, match="connect_latency"):
        SimNetwork(net.scheduler, net.clock, connect_latency=-1)


# --- pairing ----------------------------------------------------------------------------------


def test_pairing_by_qr(scheduler: Scheduler, clock: RealClock) -> None:
    net = SimNetwork(scheduler, clock, qr_interval=5, auto_pair=False)
    with pytest.raises(ValueError, match="no session waiting for pairing"):
        net.complete_pairing("A")
    rec = Recorder()
    s = net.open_session("A", rec)
    codes = rec.wait_count(QrCode, 3)
    assert len({c.code for c in codes}) == len(codes) >= 3
    assert all(c.expires_in == 5 for c in codes)
    net.complete_pairing("A")
    rec.wait_count(Connected)
    tail = [e for e in rec.snapshot() if not isinstance(e, QrCode)]
    assert tail == [Paired(jid_for("A")), Connected(jid_for("A"))]
    assert s.live
    assert net.stats()["instances"]["A"]["qr_codes"] >= 3
    s.close()
    live(net)  # paired now: plain connect


def test_pairing_by_code(scheduler: Scheduler, clock: RealClock) -> None:
    net = SimNetwork(scheduler, clock, auto_pair=False)
    rec = Recorder()
    s = net.open_session("A", rec)
    s.request_pair_code("+5511999990000")  # asked while still connecting: answered when ready
    code = rec.wait_count(PairCode)[0].code
    assert re.fullmatch(r"[A-Z]{4}-[A-Z]{4}", code)
    s.request_pair_code("5511999990000")
    rec.wait_count(PairCode, 2)
    net.complete_pairing("A")
    assert rec.wait_count(Paired)[0] == Paired(jid_for("A"))
    s.request_pair_code("5511999990000")
    assert rec.wait_count(DriverAlarm)[0].kind == "pair_code_refused"


def test_session_logout(net: SimNetwork) -> None:
    s, rec = live(net)
    s.logout()
    assert rec.wait_count(LoggedOut)[0] == LoggedOut("logged out")
    assert not s.live
    rec2 = Recorder()
    net.open_session("A", rec2)
    rec2.wait_count(QrCode)
    offline = Recorder()
    net.logout("B", offline)
    assert offline.wait_count(LoggedOut)[0] == LoggedOut("logged out")


def test_stats_totals_sum_instances(net: SimNetwork) -> None:
    for iid in ("A", "B"):
        s, rec = live(net, iid)
        s.send(msg(f"{iid}-1"))
        s.send(msg(f"{iid}-1"))
        rec.wait_count(SendResult, 2)
    stats = net.stats()
    assert set(stats["instances"]) == {"A", "B"}
    assert stats["totals"]["delivered"] == 2
    assert stats["totals"]["duplicates"] == 2
    assert stats["totals"]["connects"] == 2
    assert net.instance_ids() == ["A", "B"]
    assert net.instance_ids(live_only=True) == ["A", "B"]


def test_receipts_when_enabled(scheduler: Scheduler, clock: RealClock) -> None:
    net = SimNetwork(scheduler, clock, receipts=True)
    s, rec = live(net)
    s.send(msg("M1"))
    assert rec.wait_count(Receipt)[0] == Receipt("M1", "delivered")
    events = rec.snapshot()
    assert events.index(SendResult("M1", ok=True, wa_id="M1")) < events.index(
        Receipt("M1", "delivered")
    )


def test_runs_on_a_manual_scheduler_deterministically() -> None:
    """With ManualScheduler + FakeClock nothing happens until the test advances time."""
    from waz_actors.clock import ManualScheduler

    fake = FakeClock()
    manual = ManualScheduler(fake)
    net = SimNetwork(manual, fake, connect_latency=0.5, send_latency=0.2)
    rec1, rec2 = Recorder(), Recorder()
    s1 = net.open_session("A", rec1)
    manual.advance(0.4)
    assert rec1.snapshot() == []
    manual.advance(0.1)
    assert rec1.snapshot() == [Connected(jid_for("A"))]
    s1.send(msg("M1"))
    net.open_session("A", rec2)
    manual.advance(0.5)
    assert rec1.snapshot()[1:] == [SendResult("M1", ok=True, wa_id="M1"), Conflict()]
    assert rec2.snapshot() == [Connected(jid_for("A"))]
    net.inject("A", "ban", duration=100)
    manual.advance(0)
    assert rec2.snapshot()[-1] == Banned(until=fake.now() + 100, reason="banned")


def test_without_dedup_a_resend_is_delivered_again(net: SimNetwork) -> None:
    net.dedup_resends = False
    s1, rec1 = live(net)
    s1.send(msg("M1"))
    s1.send(msg("M1"))
    rec1.wait_count(SendResult, 2)
    assert net.delivered_ids("A") == ["M1", "M1"]
    assert net.stats()["instances"]["A"]["duplicates"] == 1


def test_blackhole_swallows_sends_silently(net: SimNetwork) -> None:
    s, rec = live(net)
    net.inject("A", "blackhole", count=1)
    net.inject("A", "blackhole", deliver=True)
    s.send(msg("M1"))  # vanishes
    s.send(msg("M2"))  # reaches the phone, no answer
    s.send(msg("M3"))
    got = rec.wait_count(SendResult)
    assert [e.message_id for e in got] == ["M3"]
    assert net.delivered_ids("A") == ["M2", "M3"]
    assert not any(isinstance(e, Disconnected) for e in rec.events)


def test_receipt_fault_names_only_the_whatsapp_id(net: SimNetwork) -> None:
    _s, rec = live(net)
    net.inject("A", "receipt", message_id="M7", status="read")
    assert rec.wait_count(Receipt)[0] == Receipt(message_id="", kind="read", wa_id="M7")
    with pytest.raises(ValueError, match="status"):
        net.inject("A", "receipt", message_id="M7", status="played")
    with pytest.raises(ValueError, match="message_id"):
        net.inject("A", "receipt")
    with pytest.raises(ValueError, match="deliver"):
        net.inject("A", "blackhole", deliver="yes")
