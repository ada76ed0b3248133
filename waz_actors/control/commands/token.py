"""token.create / list / revoke / rotate_admin: admin only. A token is shown once, at creation."""

from __future__ import annotations

from typing import Any

from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import command, optional


@command(
    "token.create",
    admin=True,
    blocking=True,
    args={
        "tenant": v.ident,
        "label": optional(v.label),
        "max_instances": optional(v.quota),
    },
)
def create(
    ctx: Context, tenant: str, label: str = "", max_instances: int | None = None
) -> dict[str, Any]:
    return ctx.auth.create(tenant, label, max_instances)


@command("token.list", admin=True, readonly=True)
def list_(ctx: Context) -> dict[str, Any]:
    return {"tokens": ctx.auth.list()}


@command("token.revoke", admin=True, blocking=True, args={"token_id": v.token_ref})
def revoke(ctx: Context, token_id: str) -> dict[str, Any]:
    return ctx.auth.revoke(token_id)


@command("token.rotate_admin", admin=True, blocking=True)
def rotate_admin(ctx: Context) -> dict[str, Any]:
    """A new admin token (written to admin.token and answered once); every other admin token,
    the caller's included, is refused from the next request on."""
    return ctx.auth.rotate_admin()
