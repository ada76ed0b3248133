"""The watch/probe arithmetic with times passed in: thresholds, availability, latencies."""

from __future__ import annotations

from waz_actors.cli.figures import (
    Board,
    ProbeTally,
    attempts_level,
    availability_level,
    conflicts_level,
    success_level,
)


def test_seed_thresholds() -> None:
    assert [conflicts_level(n) for n in (0, 1, 2, None)] == ["green", "yellow", "red", None]
    assert [attempts_level(n) for n in (30, 31, 60, 61)] == ["green", "yellow", "yellow", "red"]
    assert [success_level(r) for r in (0.81, 0.8, 0.6, 0.59, None)] == [
        "green", "yellow", "yellow", "red", None,
    ]  # fmt: skip
    assert [availability_level(a) for a in (0.9, 0.89, 0.75, 0.74)] == [
        "green", "yellow", "yellow", "red",
    ]  # fmt: skip


def test_availability_and_success_from_events() -> None:
    b = Board()
    b.get("a").set_state("online", 0.0)
    b.on_event("instance.a.state", {"instance_id": "a", "state": "cooldown"}, 6.0)
    b.on_event("instance.a.state", {"instance_id": "a", "state": "online"}, 8.0)
    b.on_event("instance.a.conflict", {"instance_id": "a", "count_in_window": 1}, 6.0)
    for status in ("sent", "sent", "sent", "failed"):
        b.on_event("message.a.status", {"instance_id": "a", "status": status}, 9.0)
    b.on_event("message.a.status", {"instance_id": "a", "status": "sending"}, 9.0)
    b.on_event("daemon.alarm", {"kind": "x"}, 9.0)
    b.on_event("instance.a.state", {"state": "online"}, 9.0)  # no id: ignored
    fig = b.get("a")
    assert fig.availability(10.0) == 0.8  # online 0-6 and 8-10 of 10 s
    assert fig.success_rate() == 0.75 and fig.conflicts_seen == 1
    doc = b.to_dict(10.0)
    assert doc["instances"]["a"]["levels"]["availability"] == "yellow"
    assert doc["alarms"] == [{"kind": "x"}]


def test_daemon_rate_until_outcomes_are_seen() -> None:
    b = Board()
    fig = b.get("a")
    fig.update_from(
        {"state": "online", "success_rate": 0.5, "conflicts": {"count": 3},
         "throttle": {"attempts_in_window": 7}, "health": "critical"},
        0.0,
    )  # fmt: skip
    assert fig.success_rate() == 0.5 and fig.conflicts_per_hour == 3
    assert fig.to_dict(1.0)["levels"] == {
        "conflicts": "red", "attempts": "green", "success": "red", "availability": "green",
    }  # fmt: skip


def test_probe_tally() -> None:
    t = ProbeTally()
    t.sent("m1", 0.0)
    t.sent("m2", 1.0)
    t.sent("m3", 2.0)
    assert t.outcome("m1", "sending", 0.5) is None  # not final
    assert t.outcome("m1", "sent", 0.25) == {
        "n": 1, "message_id": "m1", "status": "sent", "ok": True, "latency": 0.25,
        "reason": None,
    }  # fmt: skip
    assert t.outcome("m1", "failed", 0.5) is None  # already settled
    assert t.outcome("other", "sent", 0.5) is None  # not ours
    assert t.outcome("m2", "failed", 1.5, "permanent")["ok"] is False
    assert t.time_out(3.0, 5.0) == []
    late = t.time_out(7.0, 5.0)
    assert [o["message_id"] for o in late] == ["m3"] and late[0]["status"] == "timeout"
    s = t.summary()
    assert (s["count"], s["sent"], s["failed"], s["pending"]) == (3, 1, 2, 0)
    assert abs(s["success_rate"] - 1 / 3) < 1e-9 and s["latency"]["median"] == 0.25
