"""`waz-actors sim serve|fault|stats`: the fake WhatsApp network for tests and demos."""

from __future__ import annotations

from typing import Any

import click

from waz_actors.cli.common import (
    Conn,
    connection_options,
    emit_json,
    json_option,
    parse_params,
    table,
    usage_error,
)

# `waz_actors.drivers.sim.server.DEFAULT_SESSION_TTL`, written out so `--help` does not load
# ZeroMQ (a test keeps the two equal).
SESSION_TTL = 2.0


@click.group()
def sim() -> None:
    """The simulated WhatsApp network (sim driver only)."""


@sim.command()
@click.option("--endpoint", required=True, metavar="URL", help="e.g. tcp://127.0.0.1:5590")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Real seconds per simulated second; match the daemons' daemon.time_scale.",
)
@click.option("--faults", default="", metavar="KIND=RATE,...", help="Random faults per hour.")
@click.option(
    "--session-ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=SESSION_TTL,
    show_default=True,
    help="Real seconds without a word from a daemon before its sessions count as stale.",
)
@click.option("--seed", type=int, help="Seed for the fault schedule and latencies.")
@click.option("--connect-latency", type=click.FloatRange(min=0), default=0.5, show_default=True)
@click.option("--send-latency", type=click.FloatRange(min=0), default=0.2, show_default=True)
def serve(
    endpoint: str,
    time_scale: float,
    faults: str,
    session_ttl: float,
    seed: int | None,
    connect_latency: float,
    send_latency: float,
) -> None:
    """Run a shared fake network until Ctrl-C or SIGTERM (daemons set sim.endpoint to it)."""
    from zmq.error import ZMQBaseError

    from waz_actors.drivers.sim import server

    def ready(where: str) -> None:
        click.echo(f"sim server listening on {where}")

    try:
        server.serve(
            endpoint,
            time_scale,
            faults or None,
            session_ttl=session_ttl,
            seed=seed,
            connect_latency=connect_latency,
            send_latency=send_latency,
            ready=ready,
        )
    except ValueError as e:
        raise usage_error(f"sim serve: {e}") from None
    except (OSError, ZMQBaseError) as e:
        raise usage_error(f"sim serve: cannot listen on {endpoint}: {e}") from None


@sim.command()
@click.argument("instance_id")
@click.argument("kind")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@json_option
@connection_options
def fault(conn: Conn, instance_id: str, kind: str, params: tuple[str, ...], as_json: bool) -> None:
    """Inject a fault: conflict, disconnect, logout, ban, send_fail, latency, connect_fail,
    hang, incoming, crash, complete_pairing (e.g. send_fail --param count=2 --param
    permanent=true; incoming --param from=5511988887777 --param text=hi)."""
    values = parse_params(params)
    data = conn.call(lambda c: c.sim_fault(instance_id, kind, **values))
    if as_json:
        emit_json(data)
    else:
        click.echo(f"{instance_id}: injected {data.get('injected', kind)}")


@sim.command()
@json_option
@connection_options
def stats(conn: Conn, as_json: bool) -> None:
    """What the fake network delivered per instance, duplicates included."""
    data: dict[str, Any] = conn.call(lambda c: c.sim_stats())
    if as_json:
        emit_json(data)
        return
    per = data.get("instances") or {}
    keys = ("delivered", "duplicates", "connects", "conflicts_injected", "sends_failed")
    heads = ["INSTANCE", "DELIVERED", "DUPS", "CONNECTS", "CONFLICTS", "SEND FAILS"]
    rows = [[iid, *(s.get(k, 0) for k in keys)] for iid, s in sorted(per.items())]
    totals = data.get("totals") or {}
    rows.append(["(total)", *(totals.get(k, 0) for k in keys)])
    click.echo(table(heads, rows))
    faults = data.get("faults") or {}
    if faults:
        click.echo("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
