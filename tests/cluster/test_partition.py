"""Three daemon processes on one PostgreSQL with the networked simulator; one of them, running a
dozen instances or more with sends in flight, is cut off from PostgreSQL by a proxy that stops
forwarding. It closes every one of its sessions before its leases can expire (all at once:
docs/design.md, Cluster, "Self-fencing"), the other two take them after expiry + takeover
delay, and the simulator counts ZERO conflicts caused by our own sessions; every accepted
message is delivered once.

The cut comes while the node is busy: sends accepted on the other nodes wake its instances
(each reads its queue from the store: those reads hang on the cut connection), and a node that
just rejoined makes it hand instances over (its supervisor drains one session after another).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.fleet_calls import Sends, start_all
from tests.cluster.test_failover import (  # noqa: F401  (cluster_env: the fixture)
    Node,
    cluster_env,
    connects,
    reconnected,
)
from tests.waiting import wait_until
from waz_actors.control.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

INSTANCES = 36  # 12 a node
ON_CUT_NODE = 10


def start_node(env: dict[str, Any], name: str, token: str | None) -> str:
    node: Node = env["nodes"][name]
    state = Path(env["work"]) / name / "state"
    if token is not None:  # one admin token for the cluster (the tokens table is shared)
        state.mkdir(parents=True, exist_ok=True)
        (state / "admin.token").write_text(token + "\n")
    node.start()
    wait_until((state / "admin.token").exists, timeout=30, what=f"{name}'s admin token")
    sock = Path(node.endpoint.removeprefix("ipc://"))
    wait_until(sock.exists, timeout=30, what=f"{name}'s control socket")
    return token or (state / "admin.token").read_text().strip()


def leases(c: Client) -> dict[str, str]:
    """instance -> owner, for live leases only."""
    st = c.call("cluster.status")
    return {x["instance_id"]: x["owner"] for x in st["leases"] if (x["expires_in"] or 0) > 0}


def test_a_partitioned_node_closes_all_its_sessions_in_time_zero_conflicts(
    cluster_env: dict[str, Any],  # noqa: F811
) -> None:
    env = cluster_env
    nodes: dict[str, Node] = env["nodes"]
    sim = env["sim"]
    token = start_node(env, "n1", None)
    for n in ("n2", "n3"):
        start_node(env, n, token)
    with nodes["n1"].client(token) as c:
        wait_until(lambda: c.call("ping")["pong"], timeout=30, what="n1 answers")
        ids = [
            c.call("instance.create", {"instance_id": f"p{i}", "tenant": "t1", "driver": "sim"})[
                "instance_id"
            ]
            for i in range(INSTANCES)
        ]

        def spread() -> bool:
            owners = list(leases(c).values())
            return len(owners) == INSTANCES and all(owners.count(n) >= 11 for n in nodes)

        wait_until(spread, timeout=60, what=lambda: f"spread: {leases(c)}")

        start_all(c, ids)

    sends = Sends(nodes, token, ids)
    accepted, send_batch = sends.accepted, sends.batch

    # n2 leaves and comes back: the instances spread again, so n3 is handing some over (its
    # supervisor draining them one by one) when the cut comes.
    nodes["n2"].sigterm()
    with nodes["n1"].client(token) as c:
        wait_until(lambda: "n2" not in leases(c).values(), timeout=30, what="n2's handed over")
        send_batch("n1", INSTANCES)
        start_node(env, "n2", token)
        wait_until(lambda: "n2" in leases(c).values(), timeout=30, what="n2 takes some back")
        send_batch("n1", INSTANCES)  # every instance has sends queued or in flight
        cut_leases = [i for i, o in leases(c).items() if o == "n3"]
        before = connects(sim)
    env["proxy"].partition()
    cut = time.monotonic()
    send_batch("n2", INSTANCES)  # committed while n3 is cut off: its wake-ups go unheard
    with nodes["n1"].client(token) as c:

        def all_moved() -> bool:
            owners = leases(c)
            return len(owners) == INSTANCES and set(owners.values()) <= {"n1", "n2"}

        wait_until(all_moved, timeout=60, what=lambda: f"n3's instances moved: {leases(c)}")
        moved_after = time.monotonic() - cut
    assert len(cut_leases) >= ON_CUT_NODE, cut_leases
    # The new owners' sessions are up (the simulator saw each connect again), n3 still cut off.
    wait_until(lambda: reconnected(sim, before, cut_leases), timeout=60, what="reconnected")
    stats, _ = sim.query()
    assert stats["totals"]["conflicts_caused_by_ours"] == 0, stats["totals"]
    log = (Path(env["work"]) / "n3.log").read_text()
    closes = [
        (int(n), float(ms))
        for n, ms in re.findall(
            r"fence closed (\d+) session\(s\) of \d+ instance\(s\) in ([\d.]+)", log
        )
    ]
    assert sum(n for n, _ in closes) >= ON_CUT_NODE, closes  # the sessions it had
    fence_margin = 0.5  # real seconds (50 daemon s at 0.01): the close takes a fraction of it
    assert all(ms / 1000 < fence_margin / 5 for _, ms in closes), closes
    # Not before expiry: the last renew that came back was sent at most renew_every (0.2 s)
    # before the cut, and a lease lives ttl (1.5 s) from then.
    assert moved_after > 1.5 - 0.2

    env["proxy"].heal()
    send_batch("n1", INSTANCES)

    def delivered() -> set[str]:
        _, sent = sim.query()
        return {e["message_id"] for e in sent}

    wait_until(
        lambda: set(accepted) <= delivered(),
        timeout=90,
        what=lambda: f"{len(set(accepted) - delivered())} of {len(accepted)} not delivered",
    )
    stats, sent = sim.query()
    assert stats["totals"]["conflicts_caused_by_ours"] == 0, stats["totals"]
    counts: dict[str, int] = {}
    for e in sent:
        counts[e["message_id"]] = counts.get(e["message_id"], 0) + 1
    assert [m for m, k in counts.items() if k > 1] == []
    for node in nodes.values():
        if node.proc is not None and node.proc.poll() is None:
            node.sigterm()
