"""The campaign manager's claim rules, with in-memory claims on a real daemon's store and fleet
(the same rules run on PostgreSQL in tests/cluster/test_campaign_cluster.py): no claim, no
feeding; campaigns nobody holds are adopted, a bounded number per look; a lost claim stops the
feeder; an ended feeder and a stopping manager give their claims back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import pytest

from tests.campaign.test_campaign_behaviour import _online, _rows
from tests.control.conftest import TestDaemon
from tests.control.dispatch_util import Core
from tests.waiting import wait_until
from waz_actors.campaign.actor import Manager
from waz_actors.config import parse
from waz_actors.errors import ConfigError


class FakeClaims:
    """One claims table for several "nodes"; `me` is the manager's node."""

    def __init__(self, me: str = "me") -> None:
        self.me = me
        self.owner: dict[str, str] = {}
        self.epochs: dict[str, int] = {}
        self.watchers: list[tuple[str, Callable[[str], None]]] = []
        self.released: list[str] = []

    def try_claim(self, key: str) -> bool:
        if self.owner.get(key, self.me) != self.me:
            return False
        if key not in self.owner:
            self.owner[key] = self.me
            self.epochs[key] = self.epochs.get(key, 0) + 1
        return True

    def holds(self, key: str) -> bool:
        return self.owner.get(key) == self.me

    def epoch(self, key: str) -> int | None:
        return self.epochs.get(key) if self.holds(key) else None

    def release(self, key: str) -> None:
        if self.owner.get(key) == self.me:
            del self.owner[key]
            self.released.append(key)

    def unclaimed(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k not in self.owner]

    def watch(self, prefix: str, on_lost: Callable[[str], None]) -> None:
        self.watchers.append((prefix, on_lost))

    def take_away(self, key: str, to: str) -> None:
        """Another node has it now (this node's renewals failed): tell the watchers."""
        self.owner[key] = to
        for prefix, fn in self.watchers:
            if key.startswith(prefix):
                fn(key)


def _manager(d: TestDaemon, claims: FakeClaims, per_round: int = 10) -> Manager:
    cfg = dataclasses.replace(
        d.cfg, cluster=dataclasses.replace(d.cfg.cluster, claims_per_round=per_round)
    )
    assert d.fleet is not None
    return Manager(cfg, d.store, d.fleet, d.clock, d.scheduler, d.bus.publish, claims=claims)


def _running_campaign(core: Core, n: int = 5, delay: int = 0) -> str:
    acme = core.tenant("acme")
    cid: str = acme.ok(
        "campaign.create",
        name="c",
        instance_ids=["a1"],
        text="t",
        recipients=_rows(n),
        delay={"min": delay, "max": delay},
    )["campaign_id"]
    # Running in the store without the daemon's own manager (it has no claims): this test's
    # manager is the node under test.
    core.daemon.store.campaigns.set_state(cid, "running").result()
    return cid


def test_no_claim_no_feeding_and_a_dead_holders_campaign_is_adopted(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    core = Core(start_daemon())
    _online(core.tenant("acme"), "a1")
    cid = _running_campaign(core)
    claims = FakeClaims()
    claims.owner[f"campaign:{cid}"] = "other"  # another node feeds it
    m = _manager(core.daemon, claims)
    try:
        m.wake(cid)  # e.g. campaign.resume given on this node
        assert m.running() == []
        assert m.adopt() == 0  # held elsewhere: nothing to adopt
        assert core.daemon.store.campaigns.counts(cid)["pending"] == 5
        del claims.owner[f"campaign:{cid}"]  # the other node died and its claim expired
        assert m.adopt() == 1
        assert m.running() == [cid]
        wait_until(
            lambda: core.daemon.store.campaigns.get(cid).state == "done",  # type: ignore[union-attr]
            what="fed to the end by the adopting node",
        )
        wait_until(lambda: m.running() == [], what="the actor ended")
        assert claims.released == [f"campaign:{cid}"]  # given back when done
        assert core.daemon.store.campaigns.counts(cid)["sent"] == 5
    finally:
        m.stop()


def test_adoption_is_bounded_per_look(start_daemon: Callable[..., TestDaemon]) -> None:
    core = Core(start_daemon())
    _online(core.tenant("acme"), "a1")
    ids = [_running_campaign(core, n=3, delay=86400) for _ in range(3)]
    m = _manager(core.daemon, FakeClaims(), per_round=2)
    try:
        assert m.adopt() == 2 and len(m.running()) == 2
        assert m.adopt() == 1 and m.running() == sorted(ids)
        assert m.adopt() == 0  # all fed here now
    finally:
        m.stop()


def test_a_lost_claim_stops_the_feeder_and_stop_gives_claims_back(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    core = Core(start_daemon())
    _online(core.tenant("acme"), "a1")
    slow = [_running_campaign(core, n=3, delay=86400) for _ in range(2)]
    claims = FakeClaims()
    m = _manager(core.daemon, claims)
    for cid in slow:
        m.wake(cid)
    assert m.running() == sorted(slow)
    claims.take_away(f"campaign:{slow[0]}", to="other")
    wait_until(lambda: m.running() == [slow[1]], what="the feeder of the lost claim stops")
    m.wake(slow[0])  # a command here: the other node holds it now, nothing starts
    assert m.running() == [slow[1]]
    m.stop()
    assert claims.released == [f"campaign:{slow[1]}"]  # not the lost one: not ours
    assert claims.owner == {f"campaign:{slow[0]}": "other"}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"claims_per_round": 0}, "cluster.claims_per_round"),
        ({"claims_per_round": "x"}, "cluster.claims_per_round"),
        ({"claim_scan": 0}, "cluster.claim_scan"),
        ({"claim_scan": -1}, "cluster.claim_scan"),
    ],
)
def test_bad_claim_settings_are_refused_naming_the_key(
    values: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        parse({"cluster": values})
    defaults = parse({}).cluster
    assert (defaults.claim_scan, defaults.claims_per_round) == (5.0, 10)


def test_cluster_take_back_is_admin_only_and_needs_a_cluster(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    core = Core(start_daemon())
    acme = core.tenant("acme")
    code, _ = acme.error("cluster.take_back", instance_id="a1", message_id="m1")
    assert code == "unauthorized"
    code, details = core.admin.error("cluster.take_back", instance_id="a1", message_id="")
    assert code == "bad_request" and details["field"] == "message_id"
    code, _ = core.admin.error("cluster.take_back", instance_id="a1", message_id="m1")
    assert code == "invalid_state"  # one daemon: nothing is run by another node
