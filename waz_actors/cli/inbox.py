"""`waz-actors inbox ID`, `download ID INBOX_ID`, `groups ID`, `contacts ID NUMBER...`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from waz_actors.cli.common import Conn, clock, connection_options, emit_json, json_option, table


def summary(m: dict[str, Any]) -> str:
    """A received message in one cell: its text, or what its media is."""
    media = m.get("media") or {}
    parts = [m.get("text") or ""]
    if media:
        parts.append(f"[{media.get('mime', 'media')} {media.get('size', '?')} B]")
    return " ".join(p for p in parts if p)


@click.command()
@click.argument("instance_id")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--after", metavar="INBOX_ID", help="Page on from this received message.")
@json_option
@connection_options
def inbox(conn: Conn, instance_id: str, limit: int, after: str | None, as_json: bool) -> None:
    """Messages the instance received, oldest first."""
    data = conn.call(lambda c: c.inbox_list(instance_id, after, limit))
    if as_json:
        emit_json(data)
        return
    msgs = data.get("messages") or []
    if not msgs:
        click.echo("no messages")
        return
    rows = [
        [m["inbox_id"], clock(m.get("time")), m.get("from"), m.get("chat"), summary(m)]
        for m in msgs
    ]
    click.echo(table(["INBOX", "TIME", "FROM", "CHAT", "MESSAGE"], rows))
    if data.get("next"):
        click.echo(f"more: --after {data['next']}", err=True)


@click.command()
@click.argument("instance_id")
@click.argument("inbox_id")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: the media's file name, or INBOX_ID).",
)
@json_option
@connection_options
def download(
    conn: Conn, instance_id: str, inbox_id: str, output: Path | None, as_json: bool
) -> None:
    """Save the media of a received message to a file."""
    data = conn.call(lambda c: c.message_download(instance_id, inbox_id))
    name = Path(str(data.get("filename") or inbox_id)).name  # never a path from the sender
    target = output or Path(name)
    target.write_bytes(data["data"])
    meta = {k: v for k, v in data.items() if k != "data"}
    if as_json:
        emit_json({**meta, "path": str(target)})
    else:
        click.echo(f"{target}: {data['size']} bytes ({data.get('mime') or 'unknown type'})")


@click.command()
@click.argument("instance_id")
@json_option
@connection_options
def groups(conn: Conn, instance_id: str, as_json: bool) -> None:
    """The groups the instance's account is in (it must be online)."""
    found = conn.call(lambda c: c.group_list(instance_id))
    if as_json:
        emit_json({"instance_id": instance_id, "groups": found})
        return
    rows = [[g["id"], g.get("subject"), g.get("participants")] for g in found]
    click.echo(table(["GROUP", "SUBJECT", "MEMBERS"], rows) if rows else "no groups")


@click.command()
@click.argument("instance_id")
@click.argument("numbers", nargs=-1, required=True)
@json_option
@connection_options
def contacts(conn: Conn, instance_id: str, numbers: tuple[str, ...], as_json: bool) -> None:
    """Which NUMBERS are on WhatsApp (up to 500; the instance must be online)."""
    found = conn.call(lambda c: c.contact_check(instance_id, list(numbers)))
    if as_json:
        emit_json({"instance_id": instance_id, "contacts": found})
        return
    rows = [[c["number"], "yes" if c.get("on_whatsapp") else "no", c.get("jid")] for c in found]
    click.echo(table(["NUMBER", "ON WHATSAPP", "JID"], rows))
