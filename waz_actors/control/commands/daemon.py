"""ping and daemon.status."""

from __future__ import annotations

import time
from typing import Any

from waz_actors import __version__
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import VERSION, command


@command("ping", readonly=True)
def ping(ctx: Context) -> dict[str, Any]:
    return {
        "pong": True,
        "version": __version__,
        "protocol": VERSION,
        "uptime": time.monotonic() - ctx.started_at,
    }


@command("daemon.status", readonly=True)
def status(ctx: Context) -> dict[str, Any]:
    """The admin sees the whole daemon; a tenant sees the same figures for its own instances."""
    if ctx.identity.admin:
        return {**ctx.fleet.status(), "control": ctx.server_stats()}
    return {**ctx.fleet.status(tenant=ctx.identity.tenant), "tenant": ctx.identity.tenant}
