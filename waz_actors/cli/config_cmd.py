"""`waz-actors config check FILE`: validate a config without starting anything."""

from __future__ import annotations

import click

from waz_actors.cli.common import emit_json, json_option, usage_error


@click.group("config")
def config() -> None:
    """Daemon configuration files."""


@config.command()
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
def check(file: str, as_json: bool) -> None:
    """Validate FILE: one line naming the bad key and exit 2, or a summary and exit 0."""
    from waz_actors.config import load
    from waz_actors.errors import ConfigError
    from waz_actors.store.sql import redacted

    try:
        cfg = load(file)
    except ConfigError as e:
        raise usage_error(f"config: {e}") from None
    summary = {
        "file": file,
        "ok": True,
        "instances": [i.id for i in cfg.instances],
        "state_dir": str(cfg.state_dir),
        "runtime_dir": str(cfg.runtime_dir),
        "database": redacted(cfg.store_target),
        "control_endpoint": cfg.control_endpoint,
        "events_endpoint": cfg.events_endpoint,
        "tcp_endpoints": list(cfg.control.tcp_endpoints),
        "time_scale": cfg.daemon.time_scale,
    }
    if as_json:
        emit_json(summary)
        return
    click.echo(f"ok: {file}: {len(cfg.instances)} instance(s), control {cfg.control_endpoint}")
