"""`waz-actors token create|list|revoke`: tenant access tokens (admin token needed)."""

from __future__ import annotations

import click

from waz_actors.cli.common import (
    Conn,
    clock,
    connection_options,
    emit_json,
    json_option,
    table,
)


@click.group()
def token() -> None:
    """Tenant access tokens for panels and scripts."""


@token.command()
@click.argument("tenant")
@click.option("--label", help="A note: who or what uses it.")
@json_option
@connection_options
def create(conn: Conn, tenant: str, label: str | None, as_json: bool) -> None:
    """Make a token for TENANT; it is printed once and stored only hashed."""
    data = conn.call(lambda c: c.token_create(tenant, label))
    if as_json:
        emit_json(data)
        return
    click.echo(data["token"])
    click.echo(f"token id {data.get('token_id')} for tenant {tenant}: keep it secret", err=True)


@token.command("list")
@json_option
@connection_options
def list_(conn: Conn, as_json: bool) -> None:
    """Token ids, tenants, labels; never the tokens themselves."""
    rows = conn.call(lambda c: c.token_list())
    if as_json:
        emit_json({"tokens": rows})
        return
    click.echo(
        table(
            ["ID", "TENANT", "LABEL", "CREATED", "REVOKED"],
            [
                [
                    t.get("token_id"),
                    "(admin)" if t.get("admin") else t.get("tenant"),
                    t.get("label") or "-",
                    clock(t.get("created_at")),
                    "yes" if t.get("revoked") else "no",
                ]
                for t in rows
            ],
        )
    )


@token.command()
@click.argument("token_id")
@json_option
@connection_options
def revoke(conn: Conn, token_id: str, as_json: bool) -> None:
    """Revoke a token by its id (or an unambiguous prefix of 8+ hex digits)."""
    data = conn.call(lambda c: c.token_revoke(token_id))
    if as_json:
        emit_json(data)
    else:
        click.echo(f"{token_id}: revoked")
