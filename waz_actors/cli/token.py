"""`waz-actors token create|list|revoke|rotate-admin`: access tokens (admin token needed)."""

from __future__ import annotations

from typing import Any

import click

from waz_actors.cli.common import (
    Conn,
    clock,
    connection_options,
    daemon_errors,
    emit_json,
    fail,
    json_option,
    table,
    usage_error,
)


@click.group()
def token() -> None:
    """Tenant access tokens for panels and scripts."""


@token.command()
@click.argument("tenant")
@click.option("--label", help="A note: who or what uses it.")
@click.option(
    "--max-instances",
    type=click.IntRange(0, 1_000_000),
    help="Instances this token may have its tenant own [default: tenants.max_instances].",
)
@json_option
@connection_options
def create(
    conn: Conn, tenant: str, label: str | None, max_instances: int | None, as_json: bool
) -> None:
    """Make a token for TENANT; it is printed once and stored only hashed."""
    data = conn.call(lambda c: c.token_create(tenant, label, max_instances))
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
            ["ID", "TENANT", "LABEL", "MAX INST", "CREATED", "REVOKED"],
            [
                [
                    t.get("token_id"),
                    "(admin)" if t.get("admin") else t.get("tenant"),
                    t.get("label") or "-",
                    "-" if t.get("max_instances") is None else t["max_instances"],
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


@token.command("rotate-admin")
@click.option(
    "--offline",
    is_flag=True,
    help="Rotate in the state directory without asking the daemon (it must not be running).",
)
@click.option("--show", is_flag=True, help="Also print the new token on stdout.")
@json_option
@connection_options
def rotate_admin(conn: Conn, offline: bool, show: bool, as_json: bool) -> None:
    """A new admin token in <state dir>/admin.token; every older admin token is revoked.

    Asks the running daemon (token.rotate_admin), which refuses the old token from the next
    request on. When no daemon answers, or with --offline, rotates in the state directory
    itself; that is refused while a daemon holds the directory, so no daemon can go on
    trusting a token it cached."""
    data: dict[str, Any] | None = None
    how = "offline"
    if not offline:
        from waz_actors.control.client import Unreachable

        with daemon_errors(conn):
            try:
                data = conn.client().token_rotate_admin()
                how = "by the daemon"
            except Unreachable as e:
                click.echo(f"no daemon answers at {e.endpoint}: rotating offline", err=True)
    if data is None:
        data = _rotate_offline(conn)
    if not show:
        data = {k: v for k, v in data.items() if k != "token"}
    if as_json:
        emit_json({**data, "how": how})
        return
    if show:
        click.echo(data["token"])
    click.echo(
        f"admin token rotated {how}: new token id {data.get('token_id')} in {data.get('path')};"
        f" {data.get('revoked')} older admin token(s) revoked",
        err=show,
    )


def _rotate_offline(conn: Conn) -> dict[str, Any]:
    """Rotate with the state directory's lock held: a daemon that runs (and caches tokens)
    holds it, so this never races one; and no daemon can start half-way through."""
    from pathlib import Path

    from waz_actors.app.lock import StateLock
    from waz_actors.control.auth import Auth
    from waz_actors.errors import StateDirLocked
    from waz_actors.store import Store

    state = conn.state_dir
    cfg = conn.config()
    db: str | Path = cfg.db_path if cfg.store.path else state / "waz.db"
    if cfg.store.url:
        db = cfg.store.url
    elif not Path(db).exists():
        raise usage_error(f"no database at {db}: is --state-dir (or the config) right?")
    lock = StateLock(state)
    try:
        lock.acquire()
    except StateDirLocked as e:
        raise fail(
            f"{e}. A running daemon rotates its own token: run without --offline, with a token"
            " it accepts (--state-dir, WAZ_TOKEN) and an endpoint it answers on"
        ) from None
    try:
        store = Store(db)
        store.open()
        try:
            return Auth(store, state).rotate_admin()
        finally:
            store.close()
    finally:
        lock.release()
