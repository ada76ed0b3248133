"""Event mapping driven with real neonize protobuf event objects, and the wire form."""

from __future__ import annotations

import pytest

pytest.importorskip("neonize")

from neonize.proto import Neonize_pb2 as pb

from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    KeepAlive,
    LoggedOut,
    Paired,
    QrCode,
    Receipt,
    SendResult,
)
from waz_actors.drivers.whatsmeow_events import (
    WireError,
    from_wire,
    map_event,
    map_qr,
    to_wire,
)


def test_connection_lifecycle_events():
    assert map_event(pb.Connected(status=True), jid="49151@s.whatsapp.net") == [
        Connected(jid="49151@s.whatsapp.net")
    ]
    [ev] = map_event(pb.Disconnected(status=True))
    assert isinstance(ev, Disconnected) and ev.transient and ev.code is None


def test_stream_replaced_is_a_conflict_never_a_disconnect():
    assert map_event(pb.StreamReplaced()) == [Conflict(reason="replaced")]
    assert map_event(pb.StreamError(Code="440")) == [Conflict(reason="stream error 440")]
    [ev] = map_event(pb.StreamError(Code="515"))
    assert ev == Disconnected(code=515, reason="stream error 515", transient=True)


def test_logged_out_and_ban():
    assert map_event(pb.LoggedOut(OnConnect=False, Reason=2)) == [LoggedOut(reason="logged_out")]
    ev = pb.TemporaryBan(Code=pb.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE, Expire=3600)
    assert map_event(ev) == [Banned(until=3600.0, reason="sent_too_many_same_message")]


def test_client_outdated_and_final_connect_failures_raise_an_alarm():
    alarm, disc = map_event(pb.ClientOutdated())
    assert isinstance(alarm, DriverAlarm) and alarm.kind == "client_outdated"
    assert isinstance(disc, Disconnected) and not disc.transient
    alarm, disc = map_event(pb.ConnectFailure(Reason=7, Message="bad ua"))  # BAD_USER_AGENT
    assert alarm.kind == "bad_user_agent" and disc == Disconnected(
        code=409, reason="connect failure bad_user_agent: bad ua", transient=False
    )
    assert map_event(pb.ConnectFailure(Reason=4)) == [LoggedOut(reason="main_device_gone")]
    [ev] = map_event(pb.ConnectFailure(Reason=10))  # SERVICE_UNAVAILABLE: retry later
    assert ev == Disconnected(
        code=503, reason="connect failure service_unavailable", transient=True
    )


def test_pairing_events():
    ok = pb.PairStatus(
        ID=pb.JID(User="4915112345678", Server="s.whatsapp.net", Device=3),
        Status=pb.PairStatus.SUCCESS,
    )
    assert map_event(ok) == [Paired(jid="4915112345678@s.whatsapp.net")]
    [bad] = map_event(pb.PairStatus(Status=pb.PairStatus.ERROR, Error="rejected"))
    assert bad == DriverAlarm(kind="pair_failed", message="rejected")
    assert map_qr(b"2@abc", first=True) == QrCode(code="2@abc", expires_in=60.0)
    assert map_qr("2@def", first=False).expires_in == 20.0


def test_receipts_keep_only_delivered_read_played():
    ev = pb.Receipt(MessageIDs=["3EB0A", "3EB0B"], Type=pb.Receipt.READ)
    assert map_event(ev) == [
        Receipt("", "read", wa_id="3EB0A"),
        Receipt("", "read", wa_id="3EB0B"),
    ]
    assert map_event(pb.Receipt(MessageIDs=["X"], Type=pb.Receipt.READ_SELF)) == []
    assert map_event(pb.Receipt(MessageIDs=["X"], Type=pb.Receipt.DELIVERED)) == [
        Receipt("", "delivered", wa_id="X")
    ]


def test_keepalive_events_are_mapped():
    assert map_event(pb.KeepAliveTimeout(ErrorCount=2)) == [KeepAlive(ok=False, errors=2)]
    assert map_event(pb.KeepAliveRestored()) == [KeepAlive(ok=True)]
    ev = KeepAlive(ok=False, errors=3)
    assert from_wire(to_wire(ev)) == ev


def test_events_the_daemon_does_not_need_map_to_nothing():
    assert map_event(pb.Message()) == []


def test_wire_round_trip_converts_relative_real_seconds_to_daemon_time():
    ban = from_wire(to_wire(Banned(until=30.0, reason="x")), now=1000.0, time_scale=0.01)
    assert ban == Banned(until=1000.0 + 3000.0, reason="x")
    qr = from_wire(to_wire(QrCode("c", 20.0)), now=5.0, time_scale=0.5)
    assert qr == QrCode("c", 40.0)
    sr = SendResult("m", ok=True, wa_id="3EB0X")
    assert from_wire(to_wire(sr)) == sr


@pytest.mark.parametrize(
    "body",
    [[], {"type": "Nope"}, {"type": 3}, {"no": "type"}, {"type": "Connected"}],
)
def test_bad_wire_events_are_refused(body):
    with pytest.raises(WireError):
        from_wire(body)  # type: ignore[arg-type]
