"""`waz-actors http`: the HTTP gateway alone (systemd/waz-actors-http.service runs it)."""

from __future__ import annotations

import sys
from typing import Any

import click


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option("--listen", help="host:port (overrides http.listen), e.g. 127.0.0.1:8000.")
@click.option("--endpoint", help="The daemon's control endpoint (overrides http.control_endpoint).")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where admin.token is.")
@click.option("--admin-token-file", help="Token for /metrics (overrides http.admin_token_file).")
@click.option("--timeout", type=float, help="Seconds to wait for the daemon.")
@click.option("--max-body", type=int, help="Largest request body in bytes.")
@click.option("--create-driver", help="Driver for WAZIPER's get_qrcode on a new instance.")
@click.option("--curve-server-key", help="The daemon's public CURVE key file (NAME.key).")
@click.option("--curve-client-key", help="The gateway's CURVE key file (NAME.key_secret).")
@click.option("--log-level", default="warning", show_default=True)
def http(
    config_path: str | None,
    listen: str | None,
    endpoint: str | None,
    state_dir: str | None,
    admin_token_file: str | None,
    timeout: float | None,
    max_body: int | None,
    create_driver: str | None,
    curve_server_key: str | None,
    curve_client_key: str | None,
    log_level: str,
) -> None:
    """Serve the HTTP API (docs/http.md) in front of a running daemon."""
    import dataclasses

    from waz_actors import config as config_mod
    from waz_actors.errors import ConfigError
    from waz_actors.http.listen import parse_listen

    try:
        cfg = config_mod.load(config_path)
        if state_dir:
            cfg = cfg.with_overrides(state_dir=state_dir)
        given: dict[str, Any] = {
            "listen": listen,
            "control_endpoint": endpoint,
            "admin_token_file": admin_token_file,
            "request_timeout": timeout,
            "max_body": max_body,
            "create_driver": create_driver,
            "curve_server_public_key_file": curve_server_key,
            "curve_client_secret_key_file": curve_client_key,
        }
        h = dataclasses.replace(cfg.http, **{k: v for k, v in given.items() if v is not None})
        if not h.listen:
            raise ConfigError("http.listen: not set (give --listen host:port)")
        host, port = parse_listen(h.listen, "--listen" if listen else "http.listen")
        from waz_actors.http.server import serve, settings_from

        settings = settings_from(dataclasses.replace(cfg, http=h))
    except (ConfigError, ValueError) as e:
        click.echo(f"waz-actors http: config error: {e}", err=True)
        sys.exit(2)
    serve(settings, host, port, log_level)
