"""The sim server's wire codec: events and messages survive the trip; bans keep their length."""

from __future__ import annotations

import pytest

from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    DriverEvent,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    Receipt,
    SendResult,
)
from waz_actors.drivers.sim.wire import (
    decode_event,
    decode_message,
    encode_event,
    encode_message,
    pack,
    unpack,
)

EVENTS = [
    Connected("551@s.whatsapp.net"),
    Disconnected(code=428, reason="closed", transient=True),
    Conflict(),
    LoggedOut("device removed"),
    QrCode("2@abc", 20.0),
    PairCode("ABCD-EFGH"),
    Paired("551@s.whatsapp.net"),
    SendResult("M1", ok=False, error="boom", permanent=True),
    Receipt("M1", "delivered"),
    DriverAlarm("pair_code_refused", "already paired", {"n": 1}),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_events_round_trip(event: DriverEvent) -> None:
    frame = unpack(pack({"op": "event", "event": encode_event(event, 10.0)}))
    assert decode_event(frame["event"], 99.0) == event


def test_a_ban_travels_as_remaining_time_on_each_sides_clock() -> None:
    body = unpack(pack(encode_event(Banned(until=130.0, reason="banned"), now=100.0)))
    assert "until" not in body and body["remaining"] == 30.0
    assert decode_event(body, now=5.0) == Banned(until=35.0, reason="banned")
    past = encode_event(Banned(until=50.0), now=100.0)
    assert past["remaining"] == 0.0


def test_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        decode_event({"type": "Nope"}, 0.0)


def test_messages_round_trip() -> None:
    for message in (
        OutgoingMessage("M1", "551", "hi"),
        OutgoingMessage("M2", "551", None, {"kind": "image", "url": "u"}),
    ):
        assert decode_message(unpack(pack(encode_message(message)))) == message
