"""The sim's incoming side: the `incoming` fault, its schedule, groups, contacts (issue 12)."""

from __future__ import annotations

import random

import pytest

from waz_actors.drivers.base import (
    CheckContacts,
    Connected,
    FetchMedia,
    IncomingMessage,
    ListGroups,
    RequestDone,
)
from waz_actors.drivers.sim.faults import FaultSchedule, parse_fault_rates, validate_fault
from waz_actors.drivers.sim.inbound import group_jid
from waz_actors.drivers.sim.network import SimNetwork

from .conftest import Recorder


def live(net: SimNetwork, iid: str) -> Recorder:
    rec = Recorder()
    net.open_session(iid, rec)
    rec.wait_count(Connected)
    return rec


def test_incoming_fault_delivers_to_the_live_session(net: SimNetwork) -> None:
    with pytest.raises(ValueError, match="no live session"):
        net.inject("A", "incoming", text="nobody there")
    rec = live(net, "A")
    net.inject("A", "incoming", **{"from": 5511988887777, "text": "hi", "wa_id": "W1"})
    [msg] = rec.wait_count(IncomingMessage)
    assert msg.sender == msg.chat == "5511988887777@s.whatsapp.net"
    assert msg.text == "hi" and msg.wa_id == "W1" and msg.media is None
    group = group_jid("A", 2)
    net.inject("A", "incoming", group=group, media={"mime": "image/png", "size": 10})
    second = rec.wait_count(IncomingMessage, 2)[1]
    assert second.chat == group and second.sender != group
    assert second.media == {"mime": "image/png", "size": 10} and len(second.media_data or b"") == 10
    assert net.stats()["incoming"] == 2


@pytest.mark.parametrize(
    "params",
    [
        {"from": "12"},
        {"from": "120363000000000001@g.us"},
        {"group": "5511988887777@s.whatsapp.net"},
        {"media": {"mime": "x"}},
        {"media": {"size": -1}},
        {"media": {"url": "x", "bogus": 1}},
        {"wa_id": ""},
        {"colour": "red"},
    ],
)
def test_bad_incoming_params(params: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="incoming"):
        validate_fault("incoming", params)


def test_requests(net: SimNetwork) -> None:
    rec = live(net, "B")
    net.inject("B", "incoming", wa_id="M1", media={"data": b"abc"})
    rec.wait_count(IncomingMessage)
    got = Recorder()
    net.query("B", ListGroups("r1"), got)
    net.query("B", CheckContacts("r2", ("5511900000001", "5511900000010")), got)
    net.query("B", FetchMedia("r3", "M1", {"mime": "x"}), got)
    net.query("B", FetchMedia("r4", "gone", {"mime": "x"}), got)
    answers = {e.request_id: e for e in got.wait_count(RequestDone, 4)}
    assert [g["subject"] for g in answers["r1"].result] == [f"Sim group {n}" for n in (1, 2, 3)]
    assert [c["on_whatsapp"] for c in answers["r2"].result] == [True, False]
    assert answers["r3"].result == b"abc"
    assert answers["r4"].error == "media no longer available"


def test_incoming_rate_in_a_schedule(net: SimNetwork) -> None:
    assert parse_fault_rates("incoming=3600") == {"incoming": 3600.0}
    rec = live(net, "C")
    schedule = FaultSchedule({"incoming": 3600 * 200}, random.Random(3))
    schedule.start(net)
    try:
        rec.wait_count(IncomingMessage, 5)
    finally:
        schedule.stop()
    assert schedule.fired["incoming"] >= 5
    assert all(e.text for e in rec.of(IncomingMessage))
