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


@command("daemon.metrics", admin=True, readonly=True)
def metrics(ctx: Context) -> dict[str, Any]:
    """Figures for monitoring (the HTTP gateway's /metrics): daemon.status's plus connection
    attempts and breaker trips summed over the live instances, and the control counters."""
    st = ctx.fleet.status()
    attempts = trips = open_ = 0
    for s in ctx.fleet.snapshots():
        attempts += s.connect_attempts
        trips += int(s.breaker.get("trips", 0)) if s.breaker else 0
        open_ += 1 if s.breaker and s.breaker.get("state") == "open" else 0
    q = st["queue"]
    return {
        "instances": st["instances"],
        "states": st["states"],
        "queue": {"queued": q["queued"], "in_flight": q["in_flight"]},
        "sends": {"sent": q["sent"], "failed": q["failed"]},
        "conflicts_last_hour": st["conflicts_last_hour"],
        "connect_attempts": attempts,
        "breaker_trips": trips,
        "breakers_open": open_,
        "accepting": st["accepting"],
        "control": ctx.server_stats(),
    }
