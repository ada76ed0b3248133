"""`waz-actors instance pair`: show the QR (refreshed as new codes arrive) until the phone
has linked the device, or print the pairing code with --phone."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from waz_actors.cli.common import (
    Conn,
    Spinner,
    connection_options,
    daemon_errors,
    emit_json,
    fail,
    json_option,
)

POLL = 1.0  # seconds between state reads, in case the event socket dropped the `online` event


def render_qr(code: str) -> None:
    import segno

    out = sys.stdout
    if out.isatty():
        out.write("\x1b[2J\x1b[H")  # replace the previous code on screen
    segno.make(code).terminal(out=out, compact=True)
    out.write(f"code: {code}\nscan it: WhatsApp > Linked devices > Link a device\n")
    out.flush()


@click.command()
@click.argument("instance_id")
@click.option("--phone", metavar="NUMBER", help="Print a pairing code for this number instead.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0.1),
    default=180.0,
    show_default=True,
    help="Seconds to wait for the phone before giving up.",
)
@json_option
@connection_options
def pair(conn: Conn, instance_id: str, phone: str | None, wait: float, as_json: bool) -> None:
    """Link a phone: render the QR in the terminal until paired (or --phone for a code)."""
    with daemon_errors(conn):
        # Subscribe before asking, so no fresh code is published unseen; the codes themselves
        # come only to this stream, named in the pair request (never on the PUB socket).
        events = conn.client().subscribe([f"instance.{instance_id}."])
    try:
        if phone:
            code = _pair_code(conn, instance_id, phone)
            if as_json:
                emit_json({"instance_id": instance_id, "code": code})
            else:
                click.echo(code)
                click.echo(
                    "enter it on the phone: Linked devices > Link with phone number", err=True
                )
            return
        first = conn.call(lambda c: c.instance_pair(instance_id, subscription_id=events.id))
        result = _follow(conn, events, instance_id, first, wait, as_json)
    finally:
        events.close()
    if as_json:
        emit_json(result)
    elif result["paired"]:
        click.echo(f"paired: {instance_id} is online as {result.get('jid') or '?'}")
    if not result["paired"]:
        raise fail(f"pairing {instance_id}: {result['reason']}")


def _pair_code(conn: Conn, instance_id: str, phone: str) -> str:
    """Ask for a pairing code: the daemon answers once the pairing session has it."""
    with Spinner("asking for a pairing code"):
        data = conn.call(lambda c: c.instance_pair(instance_id, phone))
    if not data.get("code"):
        raise fail(f"pairing {instance_id}: the daemon answered without a pairing code")
    return str(data["code"])


def _follow(
    conn: Conn, events: Any, instance_id: str, first: dict[str, Any], wait: float, quiet: bool
) -> dict[str, Any]:
    shown: list[str] = []

    def show(code: str | None) -> None:
        if code and code not in shown:
            shown.append(code)
            if not quiet:
                render_qr(code)

    show(first.get("qr"))
    deadline = time.monotonic() + wait
    next_poll = time.monotonic() + POLL
    pairing_seen = False
    outcome: dict[str, Any] = {"paired": False, "reason": f"not paired within {wait:g} s"}
    with Spinner("waiting for the phone to scan the code") as spin:
        while (left := deadline - time.monotonic()) > 0:
            ev = events.recv(min(left, 0.2))
            if ev is not None:
                topic, body = ev
                if topic.endswith(".qr"):
                    show(body.get("qr"))
                    spin.update(f"new code ({len(shown)} shown)")
                elif topic.endswith(".state"):
                    # Pairing a logged-out instance first passes through `stopped`: only a
                    # state after `pairing` ends the wait.
                    pairing_seen = pairing_seen or body.get("state") == "pairing"
                    done = _settled(body.get("state"), body.get("reason"), pairing_seen)
                    if done is not None:
                        outcome = done
                        break
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL
                info = conn.call(lambda c: c.instance_get(instance_id))
                if info.get("state") == "online":
                    outcome = {"paired": True}
                    break
    outcome.setdefault("reason", "paired")
    if outcome["paired"]:
        outcome["jid"] = conn.call(lambda c: c.instance_get(instance_id)).get("jid")
    return {"instance_id": instance_id, **outcome, "codes_shown": len(shown)}


def _settled(state: str | None, reason: str | None, pairing_seen: bool) -> dict[str, Any] | None:
    """The pairing is over on `online` (paired) or when the instance left pairing for good."""
    if state == "online":
        return {"paired": True}
    if pairing_seen and state in ("stopped", "logged_out", "tripped", "banned", "deleted"):
        return {"paired": False, "reason": f"instance went {state}: {reason or '-'}"}
    return None
