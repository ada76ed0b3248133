"""What the multi-daemon tests (failover, partition, campaign failover) ask of the cluster
over the control socket: start every instance through any node, and send through a chosen one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.waiting import wait_until
from waz_actors.control.client import Client, ClientError


def start_all(c: Client, ids: list[str], *, online: bool = True) -> None:
    """instance.start for each id (forwarded to its owner, which keeps desired=running); while
    the leases settle the answer may be busy, not_found or invalid_state: ask again. Then, with
    `online`, wait until every instance is online."""

    def started(iid: str) -> bool:
        try:
            c.call("instance.start", {"instance_id": iid})
            return True
        except ClientError as e:
            assert e.code in ("busy", "not_found", "invalid_state"), e
            return False

    for iid in ids:
        wait_until(lambda iid=iid: started(iid), timeout=30, what=f"{iid} started")
    if online:
        wait_until(
            lambda: all(x["state"] == "online" for x in c.call("instance.list")["instances"]),
            timeout=60,
            what="every instance online",
        )


class Sends:
    """message.send round-robin over `ids` through the node asked; `accepted` keeps every id
    a node answered with (busy or shutting_down answers are expected while nodes move)."""

    def __init__(self, nodes: Mapping[str, Any], token: str, ids: list[str]) -> None:
        self.nodes = nodes
        self.token = token
        self.ids = ids
        self.accepted: list[str] = []

    def batch(self, via: str, count: int) -> None:
        accepted = self.accepted
        with self.nodes[via].client(self.token) as cl:
            for k in range(count):
                iid = self.ids[(len(accepted) + k) % len(self.ids)]
                try:
                    r = cl.call(
                        "message.send",
                        {"instance_id": iid, "to": "6281234567890", "text": f"m{len(accepted)}"},
                    )
                    accepted.append(r["message_id"])
                except ClientError as e:
                    assert e.code in ("busy", "shutting_down"), e
