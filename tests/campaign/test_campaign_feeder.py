"""The feeder's own rules, on a real daemon's store and fleet (sim): the headroom left to direct
sends, never above queue.max_size, and the delay on top of the pacing (with a FakeClock driving
a Feeder directly)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tests.campaign.test_campaign_behaviour import _online, _rows
from tests.control.conftest import TestDaemon
from tests.control.dispatch_util import Core
from tests.waiting import wait_until
from waz_actors.campaign.feeder import Feeder, Limits
from waz_actors.clock import FakeClock
from waz_actors.errors import InvalidState

HELD = {"pacing_interval": 100000.0, "pacing_jitter": 0.0}  # one send, then the queue holds


def test_direct_sends_keep_their_headroom(start_daemon: Callable[..., TestDaemon]) -> None:
    core = Core(start_daemon(queue=HELD))
    acme = core.tenant("acme")
    _online(acme, "a1")
    cid = acme.ok(
        "campaign.create", name="h", instance_ids=["a1"], text="t", recipients=_rows(300)
    )["campaign_id"]
    acme.ok("campaign.start", campaign_id=cid)
    store = core.daemon.store
    wait_until(lambda: store.pending_count("a1") >= 80, timeout=20)
    # more passes do not add: 80 of 100 is the campaign's share
    wait_until(
        lambda: acme.ok("campaign.get", campaign_id=cid)["counts"]["queued"] >= 80, timeout=20
    )
    assert store.pending_count("a1") <= 80
    sent = [
        acme.ask("message.send", instance_id="a1", to=f"6281300000{i:02d}1", text="direct")
        for i in range(25)
    ]
    accepted = [r for r in sent if r["ok"]]
    assert len(accepted) >= 20  # the headroom
    assert store.pending_count("a1") <= 100  # never above queue.max_size
    acme.ok("campaign.cancel", campaign_id=cid)


def test_the_delay_comes_on_top_of_the_pacing(start_daemon: Callable[..., TestDaemon]) -> None:
    core = Core(start_daemon())
    acme = core.tenant("acme")
    _online(acme, "a1")
    cid = acme.ok(
        "campaign.create",
        name="d",
        instance_ids=["a1"],
        text="t",
        recipients=_rows(3),
        delay={"min": 30, "max": 30},
    )["campaign_id"]
    d = core.daemon
    # Driven by hand (no actor): running in the store, one Feeder on a clock the test moves.
    d.store.campaigns.set_state(cid, "running").result()
    clock = FakeClock()
    assert d.fleet is not None
    feeder = Feeder(cid, d.store, d.fleet, clock, d.bus.publish, Limits(), random.Random(1))

    def counts() -> dict[str, int]:
        return d.store.campaigns.counts(cid)

    assert feeder.step() and counts()["queued"] == 0  # the delay starts
    clock.advance(29)
    assert feeder.step() and counts()["queued"] == 0
    clock.advance(1)
    assert feeder.step() and counts()["queued"] + counts()["sent"] == 1
    wait_until(lambda: (feeder.step(), counts()["sent"] == 1)[1], timeout=10)
    assert counts()["queued"] == 0
    feeder.step()  # the previous message left the queue: a new delay starts now
    clock.advance(29)
    assert feeder.step() and counts()["sent"] + counts()["queued"] == 1
    clock.advance(1)
    feeder.step()
    assert counts()["sent"] + counts()["queued"] == 2


def test_a_take_back_refuses_a_message_that_was_tried(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    """A retry waiting may have reached the phone: only never-tried messages come back."""
    core = Core(start_daemon(queue={"retry_delay": 100000.0}))
    acme = core.tenant("acme")
    _online(acme, "a1")
    core.admin.ok("sim.fault", instance_id="a1", kind="send_fail", params={"count": 1})
    tried = acme.ok("message.send", instance_id="a1", to="6281300000011", text="x")["message_id"]
    wait_until(lambda: acme.ok("message.get", message_id=tried)["attempts"] == 1)
    fleet = core.daemon.fleet
    assert fleet is not None
    with pytest.raises(InvalidState, match="tried already"):
        fleet.cancel("a1", tried, untried_only=True)
    assert acme.ok("message.get", message_id=tried)["status"] == "queued"
    assert fleet.cancel("a1", tried) == "cancelled"  # an operator's cancel still works
