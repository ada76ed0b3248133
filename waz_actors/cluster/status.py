"""cluster.status: the nodes, the leases and who is draining, as the admin sees them."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from waz_actors.cluster.leases import LeaseStore
from waz_actors.cluster.node import ClusterNode

MAX_LEASES = 1000  # listed in one reply at most (the counts cover all)


def cluster_status(
    admin: LeaseStore, node: ClusterNode | None, claims: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """`claims`: ClaimStore.rows(MAX_LEASES + 1), the claims held now."""
    nodes = admin.nodes()
    leases = admin.leases(MAX_LEASES + 1)
    out: dict[str, Any] = {
        "enabled": True,
        "node_id": node.node_id if node is not None else None,
        "nodes": [
            {
                "node_id": n.node_id,
                "heartbeat_age": round(n.heartbeat_age, 3),
                "draining": n.draining,
                "endpoint": n.endpoint,
                "leases": n.leases,
            }
            for n in nodes
        ],
        "draining": [n.node_id for n in nodes if n.draining],
        "leases": [
            {
                "instance_id": x.instance_id,
                "owner": x.owner,
                "epoch": x.epoch,
                "expires_in": None if x.expires_in is None else round(x.expires_in, 3),
            }
            for x in leases[:MAX_LEASES]
        ],
        "leases_truncated": len(leases) > MAX_LEASES,
        "unowned": sum(1 for x in leases if x.owner is None or (x.expires_in or 0) <= 0),
    }
    if claims is not None:
        out["claims"] = claims[:MAX_LEASES]
        out["claims_truncated"] = len(claims) > MAX_LEASES
    if node is not None:
        s = asdict(node.stats)
        s["held"] = len(node.held())
        out["this_node"] = s
    return out
