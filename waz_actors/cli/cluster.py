"""`waz-actors cluster status|drain NODE`: several daemons on one PostgreSQL (admin token)."""

from __future__ import annotations

from typing import Any

import click

from waz_actors.cli.common import Conn, age, connection_options, emit_json, json_option, table


@click.group()
def cluster() -> None:
    """Nodes and instance leases of a cluster of daemons."""


@cluster.command()
@click.option("--leases", "show_leases", is_flag=True, help="List every lease and claim too.")
@json_option
@connection_options
def status(conn: Conn, show_leases: bool, as_json: bool) -> None:
    """Nodes (heartbeat, draining, leases held), who owns which instance, who holds which
    claim (the node feeding a campaign)."""
    data = conn.call(lambda c: c.cluster_status())
    if as_json:
        emit_json(data)
        return
    click.echo(render(data, show_leases))


def render(data: dict[str, Any], show_leases: bool = False) -> str:
    if not data.get("enabled"):
        return "not in a cluster ([cluster] enabled = false)"
    rows = [
        [
            n["node_id"] + (" *" if n["node_id"] == data.get("node_id") else ""),
            age(n["heartbeat_age"]),
            "draining" if n["draining"] else "-",
            n["leases"],
            n["endpoint"] or "-",
        ]
        for n in data.get("nodes", [])
    ]
    lines = [table(["NODE", "HEARTBEAT", "DRAINING", "LEASES", "ENDPOINT"], rows)]
    leases = data.get("leases", [])
    lines.append(f"{len(leases)} lease(s), {data.get('unowned', 0)} unowned or expired")
    if show_leases:
        lines.append(
            table(
                ["INSTANCE", "OWNER", "EPOCH", "EXPIRES IN"],
                [[x["instance_id"], x["owner"], x["epoch"], age(x["expires_in"])] for x in leases],
            )
        )
    claims = data.get("claims")
    if claims is not None:  # work run once in the cluster (campaign feeding): who holds it
        lines.append(f"{len(claims)} claim(s) held")
        if show_leases and claims:
            lines.append(
                table(
                    ["CLAIM", "OWNER", "EPOCH", "EXPIRES IN"],
                    [[x["key"], x["owner"], x["epoch"], age(x["expires_in"])] for x in claims],
                )
            )
    return "\n".join(lines)


@cluster.command()
@click.argument("node")
@click.option("--undo", is_flag=True, help="Let NODE take its share again.")
@json_option
@connection_options
def drain(conn: Conn, node: str, undo: bool, as_json: bool) -> None:
    """Make NODE hand its instances over to the others, gradually (rolling maintenance)."""
    data = conn.call(lambda c: c.cluster_drain(node, undo))
    if as_json:
        emit_json(data)
        return
    word = "draining: its instances move to the other nodes" if data["draining"] else "active"
    click.echo(f"{data['node_id']} {word}")
