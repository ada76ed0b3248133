"""queue.status / list / retry / purge."""

from __future__ import annotations

from typing import Any

from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.commands.message import message_dict
from waz_actors.control.protocol import command, optional
from waz_actors.types import Health

ID = {"instance_id": v.ident}


def recommendations(snap: Any, stats: dict[str, Any]) -> list[str]:
    """Plain-language hints for an operator, from the board snapshot and the queue figures."""
    out = []
    if snap.state in ("logged_out",):
        out.append("the device was unlinked: pair the instance again (instance.pair)")
    elif snap.state == "tripped":
        out.append("the circuit breaker is open: check the number, then instance.reset")
    elif snap.state == "cooldown":
        out.append("cooling down after a 440 conflict: make sure no other client uses this number")
    elif snap.state == "stopped" and stats.get("depth", snap.queue_depth):
        out.append("messages wait but the instance is stopped: instance.start")
    if snap.health == Health.CRITICAL:
        out.append("success rate or queue depth is critical: slow down sending")
    elif snap.health == Health.WARNING:
        out.append("queue is growing: watch the success rate")
    return out


@command("queue.status", readonly=True, args=ID)
def status(ctx: Context, instance_id: str) -> dict[str, Any]:
    snap = ctx.instance(instance_id)
    stats = dict(ctx.store.queue_stats(instance_id))
    done = stats.get("sent", 0) + stats.get("failed", 0)
    return {
        "instance_id": instance_id,
        "state": snap.state,
        **stats,
        "success_rate": stats.get("sent", 0) / done if done else None,
        "health": snap.health,
        "recommendations": recommendations(snap, stats),
    }


@command(
    "queue.list",
    readonly=True,
    args={
        **ID,
        "status": optional(v.message_status),
        "limit": optional(v.limit),
        "after": optional(v.ident),
    },
)
def list_(
    ctx: Context,
    instance_id: str,
    status: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> dict[str, Any]:
    ctx.instance(instance_id)
    recs = ctx.store.list_messages(instance_id, status=status, limit=limit, after=after)
    msgs = [message_dict(r) for r in recs]
    return {"messages": msgs, "next": msgs[-1]["message_id"] if len(msgs) == limit else None}


@command("queue.retry", blocking=True, args={**ID, "message_ids": optional(v.id_list)})
def retry(ctx: Context, instance_id: str, message_ids: list[str] | None = None) -> dict[str, Any]:
    ctx.require_accepting()
    ctx.instance(instance_id)
    retried = ctx.fleet.retry(instance_id, message_ids, ctx.timeout)
    return {"retried": list(retried)}


@command("queue.purge", blocking=True, args={**ID, "status": optional(v.message_status)})
def purge(ctx: Context, instance_id: str, status: str = "queued") -> dict[str, Any]:
    ctx.require_accepting()
    ctx.instance(instance_id)
    return {"cancelled": int(ctx.fleet.purge(instance_id, status, ctx.timeout))}
