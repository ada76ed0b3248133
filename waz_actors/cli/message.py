"""`waz-actors send` and `waz-actors message show|cancel`."""

from __future__ import annotations

from typing import Any

import click

from waz_actors.cli.common import (
    Conn,
    clock,
    coloured,
    connection_options,
    emit_json,
    json_option,
    pairs,
    table,
    usage_error,
)

STATUS_COLOURS = {
    "sent": "green",
    "failed": "red",
    "expired": "red",
    "cancelled": "yellow",
    "unknown": "red",
}


@click.command()
@click.argument("instance_id")
@click.argument("to")
@click.argument("text", required=False)
@click.option("--media", metavar="URL", help="Send a file from this URL (TEXT is optional).")
@click.option("--caption", help="Media caption.")
@click.option("--filename", help="Media file name shown to the recipient.")
@click.option("--mime", help="Media MIME type.")
@click.option("--ptt", is_flag=True, help="Send the audio as a voice note.")
@click.option("--idempotency-key", metavar="KEY", help="Makes a retried send safe.")
@click.option("--ttl", type=click.FloatRange(min=0, min_open=True), help="Expire after SECONDS.")
@json_option
@connection_options
def send(
    conn: Conn,
    instance_id: str,
    to: str,
    text: str | None,
    media: str | None,
    caption: str | None,
    filename: str | None,
    mime: str | None,
    ptt: bool,
    idempotency_key: str | None,
    ttl: float | None,
    as_json: bool,
) -> None:
    """Queue a message; prints its id once it is durable on the daemon's disk."""
    if text is None and media is None:
        raise usage_error("give TEXT, --media URL, or both")
    if media is None and (caption or filename or mime or ptt):
        raise usage_error("--caption, --filename, --mime and --ptt need --media")
    media_arg: dict[str, Any] | None = None
    if media is not None:
        media_arg = {"url": media}
        for key, value in (("caption", caption), ("filename", filename), ("mime", mime)):
            if value is not None:
                media_arg[key] = value
        if ptt:
            media_arg["ptt"] = True
    data = conn.call(
        lambda c: c.message_send(instance_id, to, text, media_arg, idempotency_key, ttl)
    )
    if as_json:
        emit_json(data)
        return
    click.echo(data["message_id"])
    if not data.get("created", True):
        click.echo("(already accepted with this idempotency key: nothing new queued)", err=True)


@click.group()
def message() -> None:
    """Inspect or cancel one message."""


@message.command()
@click.argument("message_id")
@json_option
@connection_options
def show(conn: Conn, message_id: str, as_json: bool) -> None:
    """Status, attempts, last error, WhatsApp id and history of a message."""
    data = conn.call(lambda c: c.message_get(message_id))
    if as_json:
        emit_json(data)
        return
    status = data.get("status", "?")
    media = data.get("media") or {}
    click.echo(
        pairs(
            [
                ("message", data.get("message_id")),
                ("instance", data.get("instance_id")),
                ("to", data.get("to")),
                ("text", _short(data.get("text"))),
                ("media", media.get("url")),
                ("media sent", _fetched(media)),
                ("status", coloured(status, STATUS_COLOURS.get(status))),
                ("attempts", data.get("attempts")),
                ("last error", data.get("last_error")),
                ("whatsapp id", data.get("wa_id")),
                ("delivered", clock(data.get("delivered_at"))),
                ("read", clock(data.get("read_at"))),
                ("possible duplicate", "yes" if data.get("possible_duplicate") else None),
                ("created", clock(data.get("created_at"))),
                ("expires", clock(data.get("expires_at"))),
            ]
        )
    )
    history = data.get("history") or []
    if history:
        click.echo("history:")
        rows = [[clock(h.get("time")), h.get("status"), h.get("reason")] for h in history]
        click.echo(table(["TIME", "STATUS", "REASON"], rows))


def _fetched(media: dict[str, Any]) -> str | None:
    """kind, mime, size and sha256 of what the driver fetched (None before it did)."""
    if "sha256" not in media:
        return None
    kind, mime, size = media.get("kind"), media.get("mime"), media.get("size")
    return f"{kind} {mime}, {size} bytes, sha256 {media['sha256']}"


def _short(text: str | None, n: int = 60) -> str | None:
    if text is None:
        return None
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 1] + "~"


@message.command()
@click.argument("message_id")
@json_option
@connection_options
def cancel(conn: Conn, message_id: str, as_json: bool) -> None:
    """Cancel a message that has not been sent yet."""
    data = conn.call(lambda c: c.message_cancel(message_id))
    if as_json:
        emit_json(data)
    else:
        click.echo(f"{message_id}: {data.get('status')}")
