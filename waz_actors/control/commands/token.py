"""token.create / list / revoke: tenant tokens, admin only. A token is shown once, at creation."""

from __future__ import annotations

from typing import Any

from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import command, optional


@command(
    "token.create", admin=True, blocking=True, args={"tenant": v.ident, "label": optional(v.label)}
)
def create(ctx: Context, tenant: str, label: str = "") -> dict[str, Any]:
    return ctx.auth.create(tenant, label)


@command("token.list", admin=True, readonly=True)
def list_(ctx: Context) -> dict[str, Any]:
    return {"tokens": ctx.auth.list()}


@command("token.revoke", admin=True, blocking=True, args={"token_id": v.token_ref})
def revoke(ctx: Context, token_id: str) -> dict[str, Any]:
    return ctx.auth.revoke(token_id)
