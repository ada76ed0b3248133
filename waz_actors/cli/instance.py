"""`waz-actors instance ...`: list, inspect, create and drive instances."""

from __future__ import annotations

import time
from typing import Any

import click

from waz_actors.cli.common import (
    HEALTH_COLOURS,
    STATE_COLOURS,
    Conn,
    age,
    clock,
    coloured,
    connection_options,
    emit_json,
    fail,
    json_option,
    pairs,
    parse_params,
    percent,
    since,
    table,
)
from waz_actors.cli.pair import pair

STATES = (
    "stopped",
    "connecting",
    "pairing",
    "online",
    "backoff",
    "cooldown",
    "tripped",
    "logged_out",
    "banned",
)


@click.group()
def instance() -> None:
    """List, inspect, create and drive instances (one per WhatsApp number)."""


instance.add_command(pair)


@instance.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only instances in this state.")
@json_option
@connection_options
def list_(conn: Conn, state: str | None, as_json: bool) -> None:
    """All instances with state, time in state, queue depth and health."""
    rows = conn.call(lambda c: c.instance_list(state))
    if as_json:
        emit_json({"instances": rows})
        return
    if not rows:
        click.echo("no instances")
        return
    now = time.time()
    out = table(
        ["INSTANCE", "STATE", "FOR", "QUEUE", "HEALTH"],
        [
            [
                r["instance_id"],
                r["state"],
                since(r.get("since"), now),
                r.get("queue_depth", 0),
                r.get("health"),
            ]
            for r in rows
        ],
    )
    click.echo(out)


@instance.command()
@click.argument("instance_id")
@json_option
@connection_options
def show(conn: Conn, instance_id: str, as_json: bool) -> None:
    """Everything about one instance: state, breaker, conflicts, throttle, queue, health."""
    data = conn.call(lambda c: c.instance_get(instance_id))
    if as_json:
        emit_json(data)
        return
    click.echo(render_instance(data))


def render_instance(d: dict[str, Any]) -> str:
    breaker = d.get("breaker") or {}
    conflicts = d.get("conflicts") or {}
    throttle = d.get("throttle") or {}
    state = d.get("state", "?")
    health = d.get("health") or "-"
    items: list[tuple[str, Any]] = [
        ("instance", d.get("instance_id")),
        ("tenant", d.get("tenant")),
        ("driver", d.get("driver")),
        (
            "state",
            f"{coloured(state, STATE_COLOURS.get(state))} for {since(d.get('since'))}"
            f" (wanted: {d.get('desired', '-')})",
        ),
        ("jid", d.get("jid")),
        ("last reason", _reason(d)),
        ("next attempt", clock(d.get("next_attempt_at"))),
        (
            "breaker",
            f"{breaker.get('state', '-')}, {breaker.get('consecutive_failures', 0)}"
            f" failure(s), {breaker.get('trips', 0)} trip(s)",
        ),
        (
            "conflicts",
            f"{conflicts.get('count', 0)} in the last {age(conflicts.get('window'))},"
            f" next cooldown {age(conflicts.get('next_cooldown'))}",
        ),
        (
            "attempts",
            f"{throttle.get('attempts_in_window', 0)} in the throttle window,"
            f" gap {age(throttle.get('gap'))}",
        ),
        (
            "queue",
            f"{d.get('queue_depth', 0)} queued, {d.get('in_flight', 0)} in flight,"
            f" {d.get('sent', 0)} sent, {d.get('failed', 0)} failed",
        ),
        ("success rate", percent(d.get("success_rate"))),
        ("health", coloured(health, HEALTH_COLOURS.get(health))),
    ]
    if d.get("pairing"):
        items.append(("pairing", "waiting for the phone (waz-actors instance pair)"))
    return pairs(items)


def _reason(d: dict[str, Any]) -> str:
    reason = d.get("last_reason") or "-"
    return f"{reason} (code {d['last_code']})" if d.get("last_code") else reason


@instance.command()
@click.argument("instance_id", required=False)
@click.option("--driver", default="sim", show_default=True, help="whatsmeow, sim, ...")
@click.option("--tenant", help="Owner tenant (admin token only).")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@json_option
@connection_options
def create(
    conn: Conn,
    instance_id: str | None,
    driver: str,
    tenant: str | None,
    settings: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create an instance (an id is generated when none is given); prints its id."""
    values = parse_params(settings, "--setting") or None
    new_id = conn.call(
        lambda c: c.instance_create(driver, instance_id, tenant=tenant, settings=values)
    )
    if as_json:
        emit_json({"instance_id": new_id})
    else:
        click.echo(new_id)


def _transition(name: str, doc: str) -> None:
    @instance.command(name, help=doc)
    @click.argument("instance_id")
    @json_option
    @connection_options
    def command(conn: Conn, instance_id: str, as_json: bool) -> None:
        state = conn.call(lambda c: getattr(c, f"instance_{name}")(instance_id))
        if as_json:
            emit_json({"instance_id": instance_id, "state": state})
        else:
            click.echo(f"{instance_id}: {coloured(state, STATE_COLOURS.get(state))}")


_transition("start", "Want the instance online; its actor connects when the throttle allows.")
_transition("stop", "Disconnect and keep it offline; queued messages wait.")
_transition("restart", "Stop, then start again (a fresh connection, same queue).")
_transition("logout", "Unlink the device from the phone; pair again to use it.")
_transition("reset", "Close the circuit breaker and clear the conflict cooldown.")


@instance.command()
@click.argument("instance_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@connection_options
def delete(conn: Conn, instance_id: str, yes: bool, as_json: bool) -> None:
    """Delete an instance; its queued messages are cancelled (and reported)."""
    if not yes and not click.confirm(
        f"delete {instance_id} and cancel its queued messages?", err=True
    ):
        raise fail("not confirmed; nothing deleted")
    data = conn.call(lambda c: c.instance_delete(instance_id))
    if as_json:
        emit_json(data)
    else:
        click.echo(f"{instance_id}: deleted, {len(data.get('cancelled', []))} message(s) cancelled")
