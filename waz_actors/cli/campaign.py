"""`waz-actors campaign create|show|list|pause|resume|cancel|start|report`."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import click

from waz_actors.cli.common import (
    Conn,
    clock,
    connection_options,
    emit_json,
    fail,
    json_option,
    pairs,
    table,
)

COUNT_KEYS = ("pending", "queued", "sent", "failed", "skipped", "cancelled")


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Recipients from a CSV with a header: a `to` (or `number`, `phone`) column, every other
    column is a template variable."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        key = next((k for k in ("to", "number", "phone") if k in fields), None)
        if key is None:
            raise fail(f"{path}: needs a column named to, number or phone")
        rows = []
        for row in reader:
            to = (row.get(key) or "").strip()
            if not to:
                continue
            vars_ = {k: v for k, v in row.items() if k != key and k and v is not None}
            rows.append({"to": to, "vars": vars_} if vars_ else {"to": to})
    return rows


@click.group()
def campaign() -> None:
    """Bulk sends: one message to many recipients, paced and spread over numbers."""


@campaign.command()
@click.option("--name", default="campaign", show_default=True)
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--text", help="Template: {var} from the CSV columns, spintax {a|b|c}.")
@click.option("--media-url", help="A media URL to send (with --text as its caption or not).")
@click.option("--instances", required=True, help="Comma-separated instance ids.")
@click.option("--window", metavar="FROM-TO[@TZ]", help="e.g. 08:00-20:00@Asia/Jakarta")
@click.option(
    "--delay", metavar="MIN[-MAX]", help="Extra seconds between two messages of a number."
)
@click.option(
    "--check-numbers", is_flag=True, help="contact.check first; skip non-WhatsApp numbers."
)
@click.option("--start-at", type=float, help="Unix time to start at (with --start).")
@click.option("--start", "start_now", is_flag=True, help="Start it at once (else a draft).")
@json_option
@connection_options
def create(
    conn: Conn,
    name: str,
    csv_path: Path | None,
    text: str | None,
    media_url: str | None,
    instances: str,
    window: str | None,
    delay: str | None,
    check_numbers: bool,
    start_at: float | None,
    start_now: bool,
    as_json: bool,
) -> None:
    """Create a campaign from a CSV of recipients (a draft unless --start)."""
    rows = read_csv(csv_path) if csv_path else []
    win = None
    if window:
        span, _, tz = window.partition("@")
        frm, _, to = span.partition("-")
        win = {"from": frm, "to": to, "tz": tz or "UTC"}
    pause = None
    if delay:
        lo, _, hi = delay.partition("-")
        pause = {"min": float(lo), "max": float(hi or lo)}
    media = {"url": media_url} if media_url else None
    ids = [i.strip() for i in instances.split(",") if i.strip()]
    made = conn.call(
        lambda c: c.campaign_create(
            name,
            ids,
            text=text,
            media=media,
            recipients=rows,
            start_at=start_at,
            window=win,
            delay=pause,
            check_numbers=check_numbers or None,
            timeout=max(conn.timeout, 30.0),
        )
    )
    if start_now:
        made.update(conn.call(lambda c: c.campaign_start(made["campaign_id"])))
    if as_json:
        emit_json(made)
        return
    click.echo(
        f"campaign {made['campaign_id']} {made['state']}: {made['added']} recipient(s)"
        f", {made['duplicates']} duplicate(s) dropped"
    )


def render(d: dict[str, Any]) -> str:
    counts = d.get("counts") or {}
    text = pairs(
        [
            ("campaign", f"{d['campaign_id']} {d.get('name', '')}"),
            ("state", d["state"] + (f" ({d['reason']})" if d.get("reason") else "")),
            ("instances", ", ".join(d.get("instance_ids") or [])),
            ("counts", "  ".join(f"{k} {counts.get(k, 0)}" for k in COUNT_KEYS)),
            ("duplicates", d.get("duplicates", 0)),
            ("eta", clock(d.get("eta"))),
        ]
    )
    per = d.get("per_instance") or {}
    if per:
        rows = [[iid, *(c.get(k, 0) for k in COUNT_KEYS[1:])] for iid, c in sorted(per.items())]
        text += "\n" + table(["INSTANCE", *(k.upper() for k in COUNT_KEYS[1:])], rows)
    return text


@campaign.command()
@click.argument("campaign_id")
@json_option
@connection_options
def show(conn: Conn, campaign_id: str, as_json: bool) -> None:
    """State, counts, eta and the share of each instance."""
    data = conn.call(lambda c: c.campaign_get(campaign_id))
    if as_json:
        emit_json(data)
        return
    click.echo(render(data))


@campaign.command("list")
@click.option("--state", help="Only campaigns in this state.")
@json_option
@connection_options
def list_(conn: Conn, state: str | None, as_json: bool) -> None:
    """The tenant's campaigns, oldest first."""
    camps = conn.call(lambda c: c.campaign_list(state))
    if as_json:
        emit_json(camps)
        return
    if not camps:
        click.echo("no campaigns")
        return
    rows = [
        [c["campaign_id"], c["name"], c["state"], *(c["counts"].get(k, 0) for k in COUNT_KEYS)]
        for c in camps
    ]
    click.echo(table(["CAMPAIGN", "NAME", "STATE", *(k.upper() for k in COUNT_KEYS)], rows))


def _state_command(verb: str) -> click.Command:
    @click.argument("campaign_id")
    @json_option
    @connection_options
    def cmd(conn: Conn, campaign_id: str, as_json: bool) -> None:
        data = conn.call(lambda c: getattr(c, f"campaign_{verb}")(campaign_id))
        if as_json:
            emit_json(data)
        else:
            click.echo(f"campaign {data['campaign_id']} {data['state']}")

    cmd.__doc__ = f"{verb.capitalize()} a campaign."
    return click.command(verb)(cmd)


for _verb in ("start", "pause", "resume", "cancel"):
    campaign.add_command(_state_command(_verb))


@campaign.command()
@click.argument("campaign_id")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: number,status,message_id,time,error.")
@click.option("--status", help="Only recipients with this status.")
@json_option
@connection_options
def report(conn: Conn, campaign_id: str, as_csv: bool, status: str | None, as_json: bool) -> None:
    """One line per recipient: number, status, message id, time, error."""
    rows = conn.call(lambda c: list(c.campaign_report(campaign_id, status)))
    if as_json:
        emit_json(rows)
        return
    if as_csv:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["number", "status", "message_id", "time", "error"])
        for r in rows:
            w.writerow([r["to"], r["status"], r["message_id"] or "", r["time"], r["error"] or ""])
        sys.stdout.write(out.getvalue())
        return
    data = [
        [r["to"], r["status"], r["message_id"] or "-", clock(r["time"]), r["error"] or ""]
        for r in rows
    ]
    click.echo(table(["NUMBER", "STATUS", "MESSAGE", "TIME", "ERROR"], data))
