"""cluster.status, cluster.drain and cluster.take_back: admin only (nodes, leases and claims span
every tenant)."""

from __future__ import annotations

from typing import Any

from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import command, optional
from waz_actors.errors import InvalidState, NotFound


def _cluster(ctx: Context) -> Any:
    cluster = ctx.fleet.cluster
    if cluster is None:
        raise InvalidState("this daemon is not in a cluster ([cluster] enabled = false)")
    return cluster


@command("cluster.status", admin=True, readonly=True, blocking=True)
def status(ctx: Context) -> dict[str, Any]:
    """Every node (heartbeat age, draining, lease count), every lease (owner, epoch, time
    left) and this node's round figures. A daemon outside a cluster answers enabled false."""
    if ctx.fleet.cluster is None:
        return {"enabled": False}
    result: dict[str, Any] = _cluster(ctx).status()
    return result


@command(
    "cluster.drain",
    admin=True,
    blocking=True,
    args={"node_id": v.ident, "undo": optional(v.flag)},
)
def drain(ctx: Context, node_id: str, undo: bool = False) -> dict[str, Any]:
    """Ask NODE to hand its leases over gradually (each session closed, then its lease
    released for another node to take); `undo` lets it take its share again."""
    if not _cluster(ctx).drain(node_id, not undo):
        raise NotFound(f"no cluster node {node_id!r}", {"field": "node_id"})
    return {"node_id": node_id, "draining": not undo}


@command(
    "cluster.take_back",
    admin=True,
    blocking=True,
    args={"instance_id": v.ident, "message_id": v.ident},
)
def take_back(ctx: Context, instance_id: str, message_id: str) -> dict[str, Any]:
    """Node to node: a campaign's feeder on another node takes back a message queued on an
    instance this node runs: cancelled only if it was never handed to the driver (the
    instance's actor knows), else `invalid_state`."""
    _cluster(ctx)
    status = ctx.fleet.cancel(instance_id, message_id, untried_only=True, here_only=True)
    return {"instance_id": instance_id, "message_id": message_id, "status": status}
