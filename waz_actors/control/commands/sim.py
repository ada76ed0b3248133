"""sim.fault / sim.stats: fault injection for the sim driver, admin only."""

from __future__ import annotations

from typing import Any

from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import command, optional


@command(
    "sim.fault",
    admin=True,
    blocking=True,
    args={"instance_id": v.ident, "kind": v.fault_kind, "params": optional(v.params)},
)
def fault(
    ctx: Context, instance_id: str, kind: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    ctx.instance(instance_id)
    return dict(ctx.fleet.sim_fault(instance_id, kind, params or {}))


@command("sim.stats", admin=True, readonly=True)
def stats(ctx: Context) -> dict[str, Any]:
    return dict(ctx.fleet.sim_stats())
