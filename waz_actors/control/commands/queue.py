"""queue.status / list / retry / purge."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from waz_actors.config import Config
from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.commands.message import message_dict
from waz_actors.control.protocol import command, optional
from waz_actors.policy import health
from waz_actors.types import Health

if TYPE_CHECKING:
    from waz_actors.actors.board import InstanceSnapshot

ID = {"instance_id": v.ident}


def recommendations(snap: InstanceSnapshot, stats: Mapping[str, Any], cfg: Config) -> list[str]:
    """Advice for an operator from the board snapshot and the queue figures: the policy's
    troubleshooting list (policy/health.py), fed with what this command knows."""
    return health.recommendations(
        health=Health(snap.health),
        # The instance's rolling rate, the one its health verdict uses; the store's all-time
        # figures would keep advising about failures long past.
        success_rate=snap.success_rate,
        queue_depth=int(stats.get("depth", snap.queue_depth)),
        state=snap.state,
        conflicts_last_hour=int((snap.conflicts or {}).get("count", 0)),
        breaker_state=str((snap.breaker or {}).get("state", "closed")),
        oldest_age=stats.get("oldest_age"),
        healthy_success=cfg.health.healthy_success,
        healthy_queue=cfg.health.healthy_queue,
    )


def _rate(ok: int, failed: int) -> float | None:
    return ok / (ok + failed) if ok + failed else None


@command("queue.status", readonly=True, args=ID)
def status(ctx: Context, instance_id: str) -> dict[str, Any]:
    snap = ctx.instance(instance_id)
    stats = dict(ctx.store.queue_stats(instance_id))
    return {
        "instance_id": instance_id,
        "state": snap.state,
        **stats,
        "success_rate": _rate(stats.get("sent", 0), stats.get("failed", 0)),
        "health": snap.health,
        "recommendations": recommendations(snap, stats, ctx.config),
    }


@command(
    "queue.list",
    readonly=True,
    blocking=True,  # up to 1000 messages read and packed: on the pool, never on the socket loop
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
