"""A gateway "on another host": the daemon's tcp endpoint with CURVE, the gateway with its own
key pair (the keys travel through `[http]` and the supervised command line)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import zmq.auth

from tests.http.conftest import free_port, http, start_stack


def test_gateway_over_curve_tcp(tmp_path: Path) -> None:
    keys, clients = tmp_path / "keys", tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(keys, "server")
    gw_public, gw_secret = zmq.auth.create_certificates(keys, "gateway")
    os.rename(gw_public, clients / "gateway.key")
    ep = f"tcp://127.0.0.1:{free_port()}"
    run = Path(tempfile.mkdtemp(prefix="wzc", dir="/tmp"))
    stack = start_stack(
        tmp_path,
        run,
        free_port(),
        control={
            "tcp_endpoints": [ep],
            "curve_secret_key_file": server_secret,
            "curve_clients_dir": str(clients),
        },
        http={
            "control_endpoint": ep,
            "curve_server_public_key_file": server_public,
            "curve_client_secret_key_file": gw_secret,
        },
    )
    try:
        r = http("GET", stack.url("/v1/ping"), token=stack.admin_token)
        assert r.status == 200 and r.json()["pong"] is True
        assert "waz_daemon_up 1.0" in http("GET", stack.url("/metrics")).body.decode()
    finally:
        stack.admin.close()
        stack.daemon.stop(timeout=10)
        shutil.rmtree(run, ignore_errors=True)
