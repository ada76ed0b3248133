"""A campaign across three daemon processes on one PostgreSQL and the networked simulator: the
node feeding it is killed -9 mid-campaign; another node takes its claim over once it expires,
the campaign finishes there, and every recipient is sent exactly once (docs/design.md, Cluster,
"Claims"; docs/campaigns.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cluster.fleet_calls import start_all
from tests.cluster.test_failover import Node, cluster_env  # noqa: F401  (the fixture)
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

INSTANCES = 6
RECIPIENTS = 60


def start_node(env: dict[str, Any], name: str, token: str | None = None) -> str:
    """Start a node, with the cluster's one admin token once there is one (the tokens table is
    shared and each start revokes every admin token but its own file's); answer the token."""
    node: Node = env["nodes"][name]
    state = Path(env["work"]) / name / "state"
    if token is not None:
        state.mkdir(parents=True, exist_ok=True)
        (state / "admin.token").write_text(token + "\n")
    node.start()
    wait_until((state / "admin.token").exists, timeout=30, what=f"{name}'s admin token")
    sock = Path(node.endpoint.removeprefix("ipc://"))
    wait_until(sock.exists, timeout=30, what=f"{name}'s control socket")
    return token or (state / "admin.token").read_text().strip()


def start_campaign(env: dict[str, Any], via: str) -> tuple[str, str, list[str]]:
    """`via` alone first: INSTANCES online there and a campaign of RECIPIENTS started through
    it, so it feeds the campaign (with other nodes up, one of their scans could claim it in the
    instant between the start's commit and `via`'s claim: harmless, but not this test). Then
    the other nodes join (the instances spread over them) and the campaign is under way:
    (admin token, campaign id, numbers)."""
    nodes: dict[str, Node] = env["nodes"]
    token = start_node(env, via)
    with nodes[via].client(token) as c:
        wait_until(lambda: c.call("ping")["pong"], timeout=30, what=f"{via} answers")
        ids = [
            c.call("instance.create", {"instance_id": f"c{i}", "tenant": "t1", "driver": "sim"})[
                "instance_id"
            ]
            for i in range(INSTANCES)
        ]

        start_all(c, ids)
        numbers = [f"62813000{k:05d}" for k in range(RECIPIENTS)]
        cid = c.call(
            "campaign.create",
            {
                "name": "failover",
                "instance_ids": ids,
                "text": "promo {n}",
                "recipients": [{"to": n, "vars": {"n": n[-3:]}} for n in numbers],
                # 0.5 s real between two messages of one instance: 5 s or more in all.
                "delay": {"min": 50, "max": 50},
            },
        )["campaign_id"]
        c.call("campaign.start", {"campaign_id": cid})
        claims = c.call("cluster.status")["claims"]
        assert [(x["key"], x["owner"]) for x in claims] == [(f"campaign:{cid}", via)]
        for other in sorted(set(nodes) - {via}):
            start_node(env, other, token)

        def spread() -> bool:
            owners = {x["owner"] for x in c.call("cluster.status")["leases"]}
            return len(owners) == len(nodes)

        wait_until(spread, timeout=60, what="instances spread over every node")
        wait_until(lambda: counts(c, cid)["sent"] >= RECIPIENTS // 4, timeout=60, what="under way")
    return token, cid, numbers


def counts(client: Any, cid: str) -> dict[str, int]:
    return client.call("campaign.get", {"campaign_id": cid})["counts"]  # type: ignore[no-any-return]


def finish_and_check(env: dict[str, Any], token: str, cid: str, numbers: list[str]) -> int:
    """The campaign ends `done` (asked of n2, which survives in every test) and every number
    was delivered exactly once; answers the conflicts the simulator blames on us."""
    nodes: dict[str, Node] = env["nodes"]
    with nodes["n2"].client(token) as c2:
        left = counts(c2, cid)
        assert left["pending"] > 0, f"the campaign ended before the fault: {left}"
        wait_until(
            lambda: c2.call("campaign.get", {"campaign_id": cid})["state"] == "done",
            timeout=90,
            what=lambda: f"done on a surviving node: {counts(c2, cid)}",
        )
        final = counts(c2, cid)
    assert final["sent"] == RECIPIENTS, final
    _, log = env["sim"].query()
    entries: dict[str, list[str]] = {}
    for e in log:
        entries.setdefault(e["to"], []).append(e["message_id"])
    assert sorted(entries) == numbers  # everyone got it ...
    assert {n: m for n, m in entries.items() if len(m) > 1} == {}  # ... exactly once
    stats, _ = env["sim"].query()
    return int(stats["totals"]["conflicts_caused_by_ours"])


def test_a_campaign_survives_its_feeder_being_killed_and_sends_each_recipient_once(
    cluster_env: dict[str, Any],  # noqa: F811
) -> None:
    nodes: dict[str, Node] = cluster_env["nodes"]
    token, cid, numbers = start_campaign(cluster_env, via="n1")
    nodes["n1"].kill9()  # it feeds the campaign: its claim must expire first
    assert finish_and_check(cluster_env, token, cid, numbers) == 0
    logs = {n: (Path(cluster_env["work"]) / f"{n}.log").read_text() for n in ("n2", "n3")}
    assert any("campaign(s) nobody fed taken over" in log for log in logs.values())
    for n in ("n2", "n3"):
        nodes[n].sigterm()


def test_a_partitioned_feeder_stops_before_another_node_takes_the_campaign(
    cluster_env: dict[str, Any],  # noqa: F811
) -> None:
    """n3 reaches PostgreSQL through a proxy that stops forwarding: its claim renewals hang, so
    it stops feeding `fence_margin` before the claim could expire, then n1 or n2 adopts it; its
    sessions are all closed before their leases expire (the fence), so no conflict either."""
    nodes: dict[str, Node] = cluster_env["nodes"]
    token, cid, numbers = start_campaign(cluster_env, via="n3")
    cluster_env["proxy"].partition()
    # Its instances' sessions close at once too, before their leases expire: zero conflicts.
    assert finish_and_check(cluster_env, token, cid, numbers) == 0
    n3_log = (Path(cluster_env["work"]) / "n3.log").read_text()
    assert f"campaign {cid}: claim lost" in n3_log
    logs = {n: (Path(cluster_env["work"]) / f"{n}.log").read_text() for n in ("n1", "n2")}
    assert any("campaign(s) nobody fed taken over" in log for log in logs.values())
    cluster_env["proxy"].heal()
    for n in ("n1", "n2"):
        nodes[n].sigterm()
