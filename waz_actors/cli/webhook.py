"""`waz-actors webhook create|list|show|delete|deliveries|redeliver|test`: event webhooks.

A tenant token manages its tenant's webhooks; the admin token sees all and creates daemon-wide
ones (no --tenant). docs/webhooks.md says what is sent and how to verify it."""

from __future__ import annotations

from typing import Any

import click

from waz_actors.cli.common import Conn, clock, connection_options, emit_json, json_option, table

STATUSES = ("pending", "delivered", "failed", "dead")


@click.group()
def webhook() -> None:
    """Webhooks: events POSTed to your URL, signed, retried until delivered."""


@webhook.command()
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    metavar="PATTERN",
    help="message.status, message.in, instance.state, instance.alarm, campaign.*, family.*"
    " or *; repeat for several [default: *].",
)
@click.option("--secret", help="The signing secret [default: a random one, printed once].")
@click.option("--tenant", help="(admin) The tenant whose events it receives [default: all].")
@json_option
@connection_options
def create(
    conn: Conn,
    url: str,
    events: tuple[str, ...],
    secret: str | None,
    tenant: str | None,
    as_json: bool,
) -> None:
    """POST events to URL; prints the webhook id and its secret (shown only now)."""
    made = conn.call(lambda c: c.webhook_create(url, list(events) or None, secret, tenant))
    if as_json:
        emit_json(made)
        return
    click.echo(f"webhook {made['webhook_id']} -> {made['url']}")
    click.echo(f"events: {', '.join(made['events'])}")
    click.echo(f"secret: {made['secret']}")
    click.echo("keep the secret: it signs every delivery and is not shown again", err=True)


def _state(h: dict[str, Any]) -> str:
    return "enabled" if h.get("enabled") else f"disabled: {h.get('disabled_reason') or '-'}"


@webhook.command("list")
@json_option
@connection_options
def list_(conn: Conn, as_json: bool) -> None:
    """Your webhooks (every tenant's for the admin)."""
    hooks = conn.call(lambda c: c.webhook_list())
    if as_json:
        emit_json({"webhooks": hooks})
        return
    rows = [
        [h["webhook_id"], h.get("tenant") or "*", h["url"], ",".join(h["events"]), _state(h)]
        for h in hooks
    ]
    click.echo(table(["WEBHOOK", "TENANT", "URL", "EVENTS", "STATE"], rows) if rows else "none")


@webhook.command()
@click.argument("webhook_id")
@json_option
@connection_options
def show(conn: Conn, webhook_id: str, as_json: bool) -> None:
    """One webhook and its deliveries per status."""
    h = conn.call(lambda c: c.webhook_get(webhook_id))
    if as_json:
        emit_json(h)
        return
    counts = h.get("deliveries") or {}
    click.echo(f"webhook    {h['webhook_id']} ({_state(h)})")
    click.echo(f"url        {h['url']}")
    click.echo(f"tenant     {h.get('tenant') or '* (daemon-wide)'}")
    click.echo(f"events     {', '.join(h['events'])}")
    click.echo(f"created    {clock(h.get('created_at'))}")
    click.echo("deliveries " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"))


@webhook.command()
@click.argument("webhook_id")
@json_option
@connection_options
def delete(conn: Conn, webhook_id: str, as_json: bool) -> None:
    """Delete a webhook and its deliveries."""
    out = conn.call(lambda c: c.webhook_delete(webhook_id))
    if as_json:
        emit_json(out)
    else:
        click.echo(f"webhook {webhook_id} deleted")


@webhook.command()
@click.argument("webhook_id")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--after", type=int, metavar="SEQ", help="Page on from this delivery.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@connection_options
def deliveries(
    conn: Conn,
    webhook_id: str,
    status: str | None,
    after: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Deliveries of a webhook, oldest first: attempts, last answer, next try."""
    data = conn.call(lambda c: c.webhook_deliveries(webhook_id, status, after, limit))
    if as_json:
        emit_json(data)
        return
    rows = [
        [
            d["seq"],
            d["event_id"],
            d["event"],
            d["status"],
            d["attempts"],
            d.get("last_code") or d.get("last_error") or "-",
            clock(d.get("next_at")),
        ]
        for d in data["deliveries"]
    ]
    headers = ["SEQ", "EVENT ID", "EVENT", "STATUS", "TRIES", "LAST", "NEXT TRY"]
    click.echo(table(headers, rows) if rows else "no deliveries")
    if data.get("next") is not None:
        click.echo(f"more: --after {data['next']}", err=True)


@webhook.command()
@click.argument("webhook_id")
@click.argument("event_ids", nargs=-1)
@json_option
@connection_options
def redeliver(conn: Conn, webhook_id: str, event_ids: tuple[str, ...], as_json: bool) -> None:
    """Send EVENT_IDS again (default: every dead or failed delivery); re-enables the webhook."""
    out = conn.call(lambda c: c.webhook_redeliver(webhook_id, list(event_ids) or None))
    if as_json:
        emit_json(out)
    else:
        click.echo(f"{out['redelivering']} deliveries queued again")


@webhook.command()
@click.argument("webhook_id")
@json_option
@connection_options
def test(conn: Conn, webhook_id: str, as_json: bool) -> None:
    """Send a `ping` event; see its outcome with `webhook deliveries`."""
    out = conn.call(lambda c: c.webhook_test(webhook_id))
    if as_json:
        emit_json(out)
    else:
        click.echo(f"ping {out['event_id']} queued for {webhook_id}")
