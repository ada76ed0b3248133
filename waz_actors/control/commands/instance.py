"""instance.* commands. Reads come from the status board; changes go to the fleet (pool)."""

from __future__ import annotations

import time
from typing import Any

from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.commands.events import subscription_id as sid_arg
from waz_actors.control.protocol import command, optional
from waz_actors.control.quotas import room_for_instance
from waz_actors.drivers.settings import check_settings
from waz_actors.errors import BadRequest, Busy

ID = {"instance_id": v.ident}


@command(
    "instance.create",
    blocking=True,
    args={
        "instance_id": optional(v.ident),
        "driver": v.driver,
        "tenant": optional(v.ident),
        "settings": optional(v.settings),
    },
)
def create(
    ctx: Context,
    driver: str,
    instance_id: str | None = None,
    tenant: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ctx.require_accepting()
    if not ctx.identity.admin:
        if tenant is not None and tenant != ctx.identity.tenant:
            raise BadRequest(
                "tenant: only an admin token may choose the tenant", {"field": "tenant"}
            )
        tenant = ctx.identity.tenant
    # Before anything is stored or any quota room taken: an unknown key would be ignored by
    # the driver (a typo runs the session on the wrong network), and some keys are the admin's
    # alone.
    check_settings(driver, settings or {}, admin=ctx.identity.admin)
    with room_for_instance(ctx, tenant or "default"):  # quota_exceeded when the tenant is full
        new_id = ctx.fleet.create(instance_id, driver, tenant or "default", settings or {})
        _wait_visible(ctx, new_id)
    return {"instance_id": new_id}


def _wait_visible(ctx: Context, instance_id: str) -> None:
    """Answer only once the status board shows the instance, so a client's next command
    (start, send) cannot get not_found; the actor publishes its first snapshot as it starts."""
    deadline = time.monotonic() + ctx.timeout
    delay = 0.0005
    while ctx.fleet.snapshot(instance_id) is None:
        if time.monotonic() > deadline:
            raise Busy(f"instance {instance_id} was created but has not started yet")
        time.sleep(delay)  # a pool thread, never the socket loop
        delay = min(delay * 2, 0.05)


@command("instance.list", readonly=True, args={"state": optional(v.instance_state)})
def list_(ctx: Context, state: str | None = None) -> dict[str, Any]:
    snaps = ctx.fleet.snapshots(tenant=ctx.tenant_filter, state=state)
    return {"instances": [s.summary() for s in sorted(snaps, key=lambda s: s.instance_id)]}


@command("instance.get", readonly=True, args=ID)
def get(ctx: Context, instance_id: str) -> dict[str, Any]:
    return ctx.instance(instance_id).to_dict()


def _transition(name: str) -> None:
    @command(f"instance.{name}", blocking=True, args=ID)
    def handler(ctx: Context, instance_id: str) -> dict[str, Any]:
        ctx.require_accepting()
        ctx.instance(instance_id)
        return {"state": str(getattr(ctx.fleet, name)(instance_id, ctx.timeout))}

    handler.__name__ = name


for _name in ("start", "stop", "restart", "logout", "reset"):
    _transition(_name)


@command(
    "instance.pair",
    blocking=True,
    args={**ID, "phone": optional(v.phone), "subscription_id": optional(sid_arg)},
)
def pair(
    ctx: Context, instance_id: str, phone: str | None = None, subscription_id: str | None = None
) -> dict[str, Any]:
    ctx.require_accepting()
    ctx.instance(instance_id)
    if subscription_id is not None:
        # The codes shown after this answer (a QR rotates) go to that stream only: they are
        # never published on the PUB socket nor to other subscribers.
        if ctx.streams is None:
            raise BadRequest("no event streams here", {"field": "subscription_id"})
        ctx.streams.follow_pairing(ctx.identity, subscription_id, instance_id)
    return dict(ctx.fleet.pair(instance_id, phone, ctx.timeout))


@command("instance.delete", blocking=True, args=ID)
def delete(ctx: Context, instance_id: str) -> dict[str, Any]:
    ctx.require_accepting()
    ctx.instance(instance_id)
    cancelled = ctx.fleet.delete(instance_id, ctx.timeout)
    return {"instance_id": instance_id, "deleted": True, "cancelled": list(cancelled)}
