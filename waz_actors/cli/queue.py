"""`waz-actors queue status|list|retry|purge`: one instance's outbox."""

from __future__ import annotations

from typing import Any

import click

from waz_actors.cli.common import (
    HEALTH_COLOURS,
    Conn,
    Spinner,
    age,
    clock,
    coloured,
    connection_options,
    emit_json,
    fail,
    json_option,
    pairs,
    percent,
    table,
)

STATUSES = ("queued", "sending", "sent", "failed", "cancelled", "expired", "unknown")


@click.group()
def queue() -> None:
    """Look after one instance's outgoing queue."""


@queue.command()
@click.argument("instance_id")
@json_option
@connection_options
def status(conn: Conn, instance_id: str, as_json: bool) -> None:
    """Depth, in flight, oldest age, success rate, health and recommendations."""
    data = conn.call(lambda c: c.queue_status(instance_id))
    if as_json:
        emit_json(data)
        return
    click.echo(render_status(data))


def render_status(d: dict[str, Any]) -> str:
    health = d.get("health") or "-"
    text = pairs(
        [
            ("instance", f"{d.get('instance_id')} ({d.get('state')})"),
            ("depth", d.get("depth", 0)),
            ("in flight", d.get("in_flight", 0)),
            ("oldest", age(d.get("oldest_age"))),
            ("sent", d.get("sent", 0)),
            ("failed", d.get("failed", 0)),
            ("cancelled", d.get("cancelled", 0)),
            ("expired", d.get("expired", 0)),
            ("success rate", percent(d.get("success_rate"))),
            ("health", coloured(health.upper(), HEALTH_COLOURS.get(health))),
        ]
    )
    recs = d.get("recommendations") or []
    if recs:
        text += "\nrecommendations:\n" + "\n".join(f"  - {r}" for r in recs)
    return text


@queue.command("list")
@click.argument("instance_id")
@click.option("--status", type=click.Choice(STATUSES), help="Only messages with this status.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--after", metavar="MESSAGE_ID", help="Page on from this message id.")
@json_option
@connection_options
def list_(
    conn: Conn, instance_id: str, status: str | None, limit: int, after: str | None, as_json: bool
) -> None:
    """A page of messages, oldest first."""
    data = conn.call(lambda c: c.queue_list(instance_id, status, limit, after))
    if as_json:
        emit_json(data)
        return
    msgs = data.get("messages") or []
    if not msgs:
        click.echo("no messages")
        return
    rows = [
        [
            m["message_id"],
            m.get("status"),
            m.get("attempts"),
            m.get("to"),
            clock(m.get("created_at")),
        ]
        for m in msgs
    ]
    click.echo(table(["MESSAGE", "STATUS", "TRIES", "TO", "CREATED"], rows))
    if data.get("next"):
        click.echo(f"more: --after {data['next']}", err=True)


@queue.command()
@click.argument("instance_id")
@click.option("--id", "message_ids", multiple=True, metavar="MESSAGE_ID", help="Repeatable.")
@json_option
@connection_options
def retry(conn: Conn, instance_id: str, message_ids: tuple[str, ...], as_json: bool) -> None:
    """Queue failed messages again (all of them, or only the given --id ones)."""
    retried = conn.call(lambda c: c.queue_retry(instance_id, list(message_ids) or None))
    if as_json:
        emit_json({"instance_id": instance_id, "retried": retried})
    else:
        click.echo(f"{instance_id}: {len(retried)} message(s) queued again")


@queue.command()
@click.argument("instance_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@connection_options
def purge(conn: Conn, instance_id: str, yes: bool, as_json: bool) -> None:
    """Cancel the instance's queued messages (asks first unless --yes)."""
    if not yes:
        depth = conn.call(lambda c: c.queue_status(instance_id)).get("depth", 0)
        if not click.confirm(
            f"cancel {depth} queued message(s) of {instance_id}?", default=False, err=True
        ):
            raise fail("not confirmed; nothing cancelled")
    with Spinner(f"purging {instance_id}"):
        n = conn.call(lambda c: c.queue_purge(instance_id))
    if as_json:
        emit_json({"instance_id": instance_id, "cancelled": n})
    else:
        click.echo(f"{instance_id}: {n} message(s) cancelled")
