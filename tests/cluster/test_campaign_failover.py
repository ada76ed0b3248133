"""A campaign across three daemon processes on one PostgreSQL and the networked simulator: the
node feeding it is killed -9 mid-campaign; another node takes its claim over once it expires,
the campaign finishes there, and every recipient is sent exactly once (docs/design.md, Cluster,
"Claims"; docs/campaigns.md)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.test_failover import Node, cluster_env  # noqa: F401  (the fixture)
from tests.waiting import wait_until
from waz_actors.control.client import ClientError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

INSTANCES = 6
RECIPIENTS = 60


def start_all(env: dict[str, Any]) -> str:
    """Start every node with one admin token (the tokens table is shared); answer it."""
    nodes: dict[str, Node] = env["nodes"]
    work = Path(env["work"])
    nodes["n1"].start()
    token_file = work / "n1" / "state" / "admin.token"
    wait_until(token_file.exists, timeout=30, what="n1's admin token")
    token = token_file.read_text().strip()
    for n in ("n2", "n3"):
        (work / n / "state").mkdir(parents=True, exist_ok=True)
        (work / n / "state" / "admin.token").write_text(token + "\n")
        nodes[n].start()
    for node in nodes.values():
        sock = Path(node.endpoint.removeprefix("ipc://"))
        wait_until(sock.exists, timeout=30, what=f"{node.name}'s control socket")
    return token


def test_a_campaign_survives_its_feeder_being_killed_and_sends_each_recipient_once(
    cluster_env: dict[str, Any],  # noqa: F811
) -> None:
    nodes: dict[str, Node] = cluster_env["nodes"]
    token = start_all(cluster_env)
    with nodes["n1"].client(token) as c:
        wait_until(lambda: c.call("ping")["pong"], timeout=30, what="n1 answers")
        ids = [
            c.call("instance.create", {"instance_id": f"c{i}", "tenant": "t1", "driver": "sim"})[
                "instance_id"
            ]
            for i in range(INSTANCES)
        ]

        def started(iid: str) -> bool:
            try:
                c.call("instance.start", {"instance_id": iid})
                return True
            except ClientError as e:
                assert e.code in ("busy", "not_found", "invalid_state"), e
                return False

        for iid in ids:
            wait_until(lambda iid=iid: started(iid), timeout=30, what=f"{iid} started")
        wait_until(
            lambda: all(x["state"] == "online" for x in c.call("instance.list")["instances"]),
            timeout=60,
            what="every instance online",
        )
        numbers = [f"62813000{k:05d}" for k in range(RECIPIENTS)]
        cid = c.call(
            "campaign.create",
            {
                "name": "failover",
                "instance_ids": ids,
                "text": "promo {n}",
                "recipients": [{"to": n, "vars": {"n": n[-3:]}} for n in numbers],
                # 0.3 s real between two messages of one instance: a few seconds in all.
                "delay": {"min": 30, "max": 30},
            },
        )["campaign_id"]
        c.call("campaign.start", {"campaign_id": cid})

        def counts(cl: Any) -> dict[str, int]:
            return cl.call("campaign.get", {"campaign_id": cid})["counts"]  # type: ignore[no-any-return]

        wait_until(lambda: counts(c)["sent"] >= RECIPIENTS // 5, timeout=60, what="under way")
    nodes["n1"].kill9()  # the node that started it feeds it: its claim must expire first
    killed = time.monotonic()
    with nodes["n2"].client(token) as c2:
        left = counts(c2)
        assert left["pending"] > 0, f"the campaign ended before the kill: {left}"
        wait_until(
            lambda: c2.call("campaign.get", {"campaign_id": cid})["state"] == "done",
            timeout=90,
            what=lambda: f"done on a surviving node: {counts(c2)}",
        )
        final = counts(c2)
    took = time.monotonic() - killed
    assert final["sent"] == RECIPIENTS, final
    logs = {n: (Path(cluster_env["work"]) / f"{n}.log").read_text() for n in ("n2", "n3")}
    assert any("campaign(s) nobody fed taken over" in log for log in logs.values()), took
    _, log = cluster_env["sim"].query()
    entries: dict[str, list[str]] = {}
    for e in log:
        entries.setdefault(e["to"], []).append(e["message_id"])
    assert sorted(entries) == numbers  # everyone got it ...
    assert {n: m for n, m in entries.items() if len(m) > 1} == {}  # ... exactly once
    for n in ("n2", "n3"):
        nodes[n].sigterm()
