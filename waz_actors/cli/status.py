"""`waz-actors status`: the daemon in one screen."""

from __future__ import annotations

from typing import Any

import click

from waz_actors.cli.common import (
    STATE_COLOURS,
    Conn,
    age,
    clock,
    coloured,
    connection_options,
    emit_json,
    json_option,
    pairs,
    percent,
)


@click.command()
@json_option
@connection_options
def status(conn: Conn, as_json: bool) -> None:
    """Daemon summary: instances per state, queue totals, success rate, conflicts, alarms."""
    data = conn.call(lambda c: c.daemon_status())
    if as_json:
        emit_json(data)
        return
    click.echo(render(data))


def render(data: dict[str, Any]) -> str:
    states = data.get("states") or {}
    busy = [f"{coloured(s, STATE_COLOURS.get(s))} {n}" for s, n in states.items() if n]
    queue = data.get("queue") or {}
    conflicts = data.get("conflicts_last_hour", 0)
    lines = [
        pairs(
            [
                ("instances", f"{data.get('instances', 0)}  ({', '.join(busy) or 'none'})"),
                (
                    "queue",
                    f"{queue.get('queued', 0)} queued, {queue.get('in_flight', 0)} in flight, "
                    f"{queue.get('sent', 0)} sent, {queue.get('failed', 0)} failed",
                ),
                ("success rate", percent(data.get("success_rate"))),
                ("conflicts/h", coloured(str(conflicts), "green" if not conflicts else "red")),
                ("accepting", "yes" if data.get("accepting", True) else "no (shutting down)"),
                ("uptime", age(data.get("uptime"))),
            ]
        )
    ]
    alarms = data.get("alarms") or []
    if alarms:
        lines.append(f"alarms ({len(alarms)}, latest last):")
        for a in alarms[-5:]:
            who = a.get("instance_id") or "daemon"
            line = f"  {clock(a.get('time'))}  {who}  {a.get('kind')}: {a.get('message', '')}"
            lines.append(coloured(line[:80], "red"))
    return "\n".join(lines)
