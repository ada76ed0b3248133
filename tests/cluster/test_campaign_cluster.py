"""Campaign feeding in a cluster (two daemons in this process, one PostgreSQL, one simulated
network): one node feeds a campaign at a time (the holder of `campaign:<id>`), commands given
to the other node reach it, a node that stops hands the campaign over, and every recipient is
sent exactly once."""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.test_daemon_cluster import N, cluster_config, running
from tests.core.daemon_util import FAST
from tests.waiting import wait_until
from waz_actors.app.runtime import Daemon
from waz_actors.cli.cluster import render
from waz_actors.clock import RealClock, Scheduler
from waz_actors.cluster.claims import ClaimStore
from waz_actors.config import Config
from waz_actors.control.auth import Auth, read_admin_token
from waz_actors.control.commands import REGISTRY
from waz_actors.control.dispatch import Dispatcher
from waz_actors.drivers.sim.network import SimNetwork

RECIPIENTS = 40


@pytest.fixture
def sim() -> Iterator[SimNetwork]:
    clock = RealClock(FAST)
    sched = Scheduler(clock)
    sched.start()
    yield SimNetwork(sched, clock, connect_latency=0.5, send_latency=0.2, rand=random.Random(7))
    sched.stop()


def config(tmp: Path, url: str, node: str, run: Path, **queue: Any) -> Config:
    cfg = cluster_config(tmp, url, node).with_overrides(runtime_dir=str(run / node))
    # Look for unfed campaigns every 0.2 s (real), not every 5 ms.
    return dataclasses.replace(
        cfg,
        cluster=dataclasses.replace(cfg.cluster, claim_scan=200.0),
        queue=dataclasses.replace(cfg.queue, **queue),
    )


Pair = Callable[..., tuple[Daemon, Daemon]]


@pytest.fixture
def pair(tmp_path: Path, pg_url: str, sim: SimNetwork) -> Iterator[Pair]:
    """Starts two daemons with their control sockets (a node asks another one's instances
    through it) and one admin token (b gets a's file); keyword arguments set [queue]."""
    run = Path(tempfile.mkdtemp(prefix="wz", dir="/tmp"))  # short ipc:// paths
    started: list[Daemon] = []

    def start(**queue: Any) -> tuple[Daemon, Daemon]:
        a = Daemon(config(tmp_path, pg_url, "a", run, **queue), sim=sim)
        a.start()
        started.append(a)
        b_cfg = config(tmp_path, pg_url, "b", run, **queue)
        b_cfg.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(a.cfg.state_dir / "admin.token", b_cfg.state_dir / "admin.token")
        b = Daemon(b_cfg, sim=sim)
        b.start()
        started.append(b)
        return a, b

    try:
        yield start
    finally:
        for d in started:
            d.stop()
        shutil.rmtree(run, ignore_errors=True)


class Node:
    def __init__(self, d: Daemon, admin_dir: Path) -> None:
        assert d.fleet is not None
        self.d = d
        self.auth = Auth(d.store, admin_dir)
        self.dispatch = Dispatcher(d.cfg, d.fleet, d.store, self.auth, REGISTRY)

    def ask(self, token: str, cmd: str, **args: Any) -> Any:
        reply = self.dispatch({"v": 1, "id": 1, "cmd": cmd, "token": token, "args": args})
        assert "result" in reply, reply
        return reply["result"]

    def feeds(self) -> list[str]:
        assert self.d.campaigns is not None
        return self.d.campaigns.running()


def test_one_node_feeds_commands_on_the_other_reach_it_and_a_stop_hands_it_over(
    pg_url: str, sim: SimNetwork, pair: Pair
) -> None:
    a, b = pair()
    na, nb = Node(a, a.cfg.state_dir), Node(b, a.cfg.state_dir)
    admin = read_admin_token(a.cfg.state_dir)
    wait_until(lambda: len(running(a)) == len(running(b)) == N // 2, timeout=20, what="split")
    ids = [f"i{k}" for k in range(N)]
    recipients = [{"to": f"62812000{k:05d}"} for k in range(RECIPIENTS)]
    cid = na.ask(
        admin,
        "campaign.create",
        name="c",
        instance_ids=ids,
        text="hello",
        recipients=recipients,
        delay={"min": 300, "max": 300},  # 0.3 s real per message and instance
    )["campaign_id"]
    na.ask(admin, "campaign.start", campaign_id=cid)
    wait_until(lambda: na.feeds() == [cid], what="a feeds the campaign it started")
    claims = ClaimStore(pg_url, "probe", 1.0)
    try:
        assert claims.unclaimed([f"campaign:{cid}"]) == []
        st = nb.ask(admin, "cluster.status")  # any node shows who feeds it
        assert [(x["key"], x["owner"], x["epoch"]) for x in st["claims"]] == [
            (f"campaign:{cid}", "a", 1)
        ]
        assert st["this_node"]["claims_held"] == 0 and st["claims_truncated"] is False
        shown = render(st, show_leases=True)
        assert "1 claim(s) held" in shown and f"campaign:{cid}" in shown

        def counts() -> dict[str, int]:
            return na.ask(admin, "campaign.get", campaign_id=cid)["counts"]  # type: ignore[no-any-return]

        wait_until(lambda: counts()["sent"] >= 4, timeout=20, what="some sent")
        assert nb.feeds() == []  # b sees it running but does not feed it
        # Pause through b: b cannot claim it; a notices at its next pass and lets go.
        assert nb.ask(admin, "campaign.pause", campaign_id=cid)["state"] == "paused"
        wait_until(lambda: na.feeds() == [], timeout=10, what="a stops feeding")
        wait_until(
            lambda: claims.unclaimed([f"campaign:{cid}"]) != [],
            what="the claim is given back",
        )
        assert nb.feeds() == []
        # Resume through b: b claims it now and feeds it.
        assert nb.ask(admin, "campaign.resume", campaign_id=cid)["state"] == "running"
        wait_until(lambda: nb.feeds() == [cid], what="b feeds it after the resume")
        assert na.feeds() == []
        sent_before = counts()["sent"]
        wait_until(lambda: counts()["sent"] >= sent_before + 4, timeout=20, what="b sends")
        # b stops (SIGTERM): its claim is released at once, a takes the campaign over.
        b.stop()
        wait_until(lambda: na.feeds() == [cid], timeout=10, what="a adopts the campaign")
        wait_until(
            lambda: na.ask(admin, "campaign.get", campaign_id=cid)["state"] == "done",
            timeout=60,
            what=lambda: f"done: {counts()}",
        )
    finally:
        claims.close()
    final = counts()
    assert final["sent"] + final["failed"] == RECIPIENTS, final
    per_number: dict[str, int] = {}
    for e in sim.delivered_log():
        per_number[e["to"]] = per_number.get(e["to"], 0) + 1
    assert sorted(per_number) == sorted(r["to"] for r in recipients)[: len(per_number)]
    assert [n for n, k in per_number.items() if k > 1] == []
    assert len(per_number) == final["sent"]
    assert sim.stats()["totals"]["conflicts_caused_by_ours"] == 0


def test_the_feeder_checks_numbers_and_takes_back_on_instances_another_node_runs(
    pair: Pair,
) -> None:
    a, b = pair(pacing_interval=100000.0, pacing_jitter=0.0)  # one send each, then held
    na = Node(a, a.cfg.state_dir)
    admin = read_admin_token(a.cfg.state_dir)
    wait_until(lambda: len(running(a)) == len(running(b)) == N // 2, timeout=20, what="split")
    theirs = sorted(running(b))  # a runs none of the campaign's instances
    wait_until(
        lambda: all(b.board.get(i).state == "online" for i in theirs),  # type: ignore[union-attr]
        timeout=20,
        what="b's instances online",
    )
    on = [{"to": f"62814000{k:04d}1"} for k in range(12)]
    off = [{"to": f"62814000{k:04d}0"} for k in range(4)]  # the sim: not on WhatsApp
    cid = na.ask(
        admin,
        "campaign.create",
        name="remote",
        instance_ids=theirs,
        text="hi",
        recipients=on + off,
        check_numbers=True,
    )["campaign_id"]
    na.ask(admin, "campaign.start", campaign_id=cid)
    assert na.feeds() == [cid]

    def counts() -> dict[str, int]:
        return na.ask(admin, "campaign.get", campaign_id=cid)["counts"]  # type: ignore[no-any-return]

    # contact.check went to b (a runs none of them); the queues hold after one send each.
    wait_until(
        lambda: counts()["skipped"] == 4 and counts()["sent"] == len(theirs),
        timeout=20,
        what=lambda: f"checked and fed: {counts()}",
    )
    wait_until(lambda: counts()["queued"] == 12 - len(theirs), what="the rest queued on b")
    na.ask(admin, "campaign.pause", campaign_id=cid)
    # a's feeder takes them back through b's instance actors: cancelled, never sent.
    wait_until(
        lambda: counts()["queued"] == 0,
        timeout=20,
        what=lambda: f"taken back from b: {counts()}",
    )
    got = counts()
    assert got["pending"] == 12 - len(theirs) and got["sent"] == len(theirs), got
    assert all(b.board.get(i).queue_depth == 0 for i in theirs)  # type: ignore[union-attr]
    delivered = {e["to"] for e in b.sim.delivered_log()}  # type: ignore[union-attr]
    assert len(delivered) == len(theirs) and not delivered & {r["to"] for r in off}
    # The node-to-node command, asked of b for an instance b does not run: not found there.
    nb = Node(b, a.cfg.state_dir)
    mine = sorted(running(a))[0]
    reply = nb.dispatch(
        {
            "v": 1,
            "id": 1,
            "cmd": "cluster.take_back",
            "token": admin,
            "args": {"instance_id": mine, "message_id": "0000000000000000"},
        }
    )
    assert reply["error"]["code"] == "not_found", reply
