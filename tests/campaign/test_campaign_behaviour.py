"""Campaign behaviour on an in-process daemon (real store, sim driver, compressed time):
pause and the window hold sending, a ban or a failure rate pauses the campaign with an alarm and
a banned instance's share moves to the others, check_numbers skips numbers not on WhatsApp."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.control.conftest import TestDaemon
from tests.control.dispatch_util import Caller, Core
from tests.waiting import wait_until
from waz_actors.events import EventRecorder

SLOW = {"pacing_interval": 20.0, "pacing_jitter": 0.0}  # 0.2 s real per message per number


def _core(start_daemon: Callable[..., TestDaemon], **sections: dict[str, Any]) -> Core:
    return Core(start_daemon(**sections))


def _online(c: Caller, *ids: str) -> None:
    for iid in ids:
        c.ok("instance.create", driver="sim", instance_id=iid)
        c.ok("instance.start", instance_id=iid)
    wait_until(lambda: all(c.ok("instance.get", instance_id=i)["state"] == "online" for i in ids))


def _rows(n: int, last: str = "1") -> list[dict[str, object]]:
    return [{"to": f"62812{i:07d}{last}", "vars": {"name": f"N{i}"}} for i in range(n)]


def _get(c: Caller, cid: str) -> dict[str, Any]:
    got: dict[str, Any] = c.ok("campaign.get", campaign_id=cid)
    return got


def _delivered(core: Core) -> int:
    assert core.daemon.sim is not None
    return int(core.daemon.sim.stats()["totals"]["delivered"])


def _ticks(core: Core, cid: str, n: int) -> None:
    """Wait until the feeder made `n` more passes that published progress."""
    rec = EventRecorder(core.daemon.bus, "campaign.progress")
    try:
        assert rec.wait_for(
            lambda evs: sum(1 for _, b in evs if b["campaign_id"] == cid) >= n, timeout=20
        )
    finally:
        rec.close()


def test_pause_holds_and_resume_finishes_exactly_once(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    core = _core(start_daemon, queue=SLOW)
    acme = core.tenant("acme")
    _online(acme, "a1", "a2", "a3")
    cid = acme.ok(
        "campaign.create",
        name="p",
        instance_ids=["a1", "a2", "a3"],
        text="Hi {name}",
        recipients=_rows(60),
    )["campaign_id"]
    acme.ok("campaign.start", campaign_id=cid)
    wait_until(lambda: _get(acme, cid)["counts"]["sent"] >= 6, timeout=20)
    acme.ok("campaign.pause", campaign_id=cid)
    # the queued messages come back: nothing but what was being sent may still go out
    wait_until(lambda: _get(acme, cid)["counts"]["queued"] == 0, timeout=20)
    held = _delivered(core)
    _ticks(core, cid, 0)
    for i in ("a1", "a2", "a3"):  # the outboxes hold nothing of the campaign
        assert acme.ok("queue.status", instance_id=i)["depth"] == 0
    assert _delivered(core) <= held + 3 and _get(acme, cid)["state"] == "paused"
    acme.ok("campaign.resume", campaign_id=cid)
    wait_until(lambda: _get(acme, cid)["state"] == "done", timeout=60)
    got = _get(acme, cid)
    assert got["counts"]["sent"] == 60 and sum(got["counts"].values()) == 60
    assert _delivered(core) == 60  # one message per recipient, pause or not


def test_window_holds_sending(start_daemon: Callable[..., TestDaemon]) -> None:
    core = _core(start_daemon)
    acme = core.tenant("acme")
    _online(acme, "a1")
    hour = time.gmtime().tm_hour
    shut = {"from": f"{(hour + 2) % 24:02d}:00", "to": f"{(hour + 3) % 24:02d}:00", "tz": "UTC"}
    cid = acme.ok(
        "campaign.create",
        name="w",
        instance_ids=["a1"],
        text="t",
        recipients=_rows(5),
        window=shut,
    )["campaign_id"]
    acme.ok("campaign.start", campaign_id=cid)
    _ticks(core, cid, 3)
    got = _get(acme, cid)
    assert got["state"] == "running" and got["counts"]["pending"] == 5
    assert _delivered(core) == 0


def test_a_ban_pauses_with_an_alarm_and_its_share_moves(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    core = _core(start_daemon, queue=SLOW)
    acme = core.tenant("acme")
    _online(acme, "a1", "a2", "a3")
    alarms = EventRecorder(core.daemon.bus, "daemon.alarm")
    cid = acme.ok(
        "campaign.create",
        name="b",
        instance_ids=["a1", "a2", "a3"],
        text="t",
        recipients=_rows(45),
    )["campaign_id"]
    acme.ok("campaign.start", campaign_id=cid)
    wait_until(lambda: _get(acme, cid)["counts"]["sent"] >= 3, timeout=20)
    core.admin.ok("sim.fault", instance_id="a1", kind="ban", params={"duration": 100000.0})
    wait_until(lambda: _get(acme, cid)["state"] == "paused", timeout=20)
    assert "a1 is banned" in _get(acme, cid)["reason"]
    assert alarms.wait_for(lambda evs: any(b.get("campaign_id") == cid for _, b in evs))
    # the operator resumes: the banned number gets nothing more, the others take its share
    a1_before = _get(acme, cid)["per_instance"].get("a1", {}).get("sent", 0)
    acme.ok("campaign.resume", campaign_id=cid)
    wait_until(lambda: _get(acme, cid)["state"] == "done", timeout=60)
    got = _get(acme, cid)
    assert got["per_instance"]["a1"].get("queued", 0) == 0
    assert got["per_instance"]["a1"].get("sent", 0) == a1_before
    assert got["counts"]["sent"] == 45 and _delivered(core) == 45


def test_a_failure_rate_below_60_percent_pauses(start_daemon: Callable[..., TestDaemon]) -> None:
    core = _core(start_daemon)
    acme = core.tenant("acme")
    _online(acme, "a1")
    core.admin.ok(
        "sim.fault", instance_id="a1", kind="send_fail", params={"count": 200, "permanent": True}
    )
    cid = acme.ok(
        "campaign.create", name="f", instance_ids=["a1"], text="t", recipients=_rows(120)
    )["campaign_id"]
    acme.ok("campaign.start", campaign_id=cid)
    wait_until(lambda: _get(acme, cid)["state"] == "paused", timeout=30)
    got = _get(acme, cid)
    assert "success rate 0%" in got["reason"]
    assert got["counts"]["failed"] >= 50 and got["counts"]["pending"] > 0


def test_check_numbers_skips_numbers_not_on_whatsapp(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    core = _core(start_daemon)
    acme = core.tenant("acme")
    _online(acme, "a1", "a2")
    rows = _rows(10, last="1") + _rows(4, last="0")  # the sim: numbers ending in 0 are not
    cid = acme.ok(
        "campaign.create",
        name="c",
        instance_ids=["a1", "a2"],
        text="t",
        recipients=rows,
        check_numbers=True,
    )["campaign_id"]
    acme.ok("campaign.start", campaign_id=cid)
    wait_until(lambda: _get(acme, cid)["state"] == "done", timeout=30)
    got = _get(acme, cid)
    assert got["counts"]["sent"] == 10 and got["counts"]["skipped"] == 4
    assert _delivered(core) == 10
    skipped = acme.ok("campaign.recipients", campaign_id=cid, status="skipped")["recipients"]
    assert {r["to"][-1] for r in skipped} == {"0"} and skipped[0]["error"] == "not on WhatsApp"
