"""Run the gateway with uvicorn until SIGTERM or SIGINT (uvicorn handles both)."""

from __future__ import annotations

import importlib.util

from waz_actors.config import Config
from waz_actors.control.keys import read_public, read_secret
from waz_actors.http.gateway import Settings


def settings_from(cfg: Config, endpoint: str | None = None) -> Settings:
    h = cfg.http
    server_key = keypair = None
    if h.curve_server_public_key_file and h.curve_client_secret_key_file:
        server_key = read_public(h.curve_server_public_key_file)
        keypair = read_secret(h.curve_client_secret_key_file)
    return Settings(
        endpoint=endpoint or h.control_endpoint or cfg.control_endpoint,
        timeout=h.request_timeout,
        max_body=h.max_body,
        admin_token_file=h.admin_token_file or str(cfg.state_dir / "admin.token"),
        create_driver=h.create_driver,
        curve_server_key=server_key,
        curve_keypair=keypair,
    )


def serve(settings: Settings, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    from waz_actors.http import dashboard
    from waz_actors.http.app import build_app

    fast = importlib.util.find_spec("uvloop") is not None
    uvicorn.run(
        build_app(settings, dashboard.routes()),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,  # the daemon logs every command; one line per request here is noise
        loop="uvloop" if fast else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
