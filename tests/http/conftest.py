"""A real daemon (in-process, sim driver) whose `http.listen` makes it start and supervise the
real gateway subprocess; tests speak HTTP to it on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.control.conftest import (  # noqa: F401 - fixtures the tests here use too
    TestDaemon,
    admin,
    core,
    daemon,
    make_config,
    short_dir,
    start_daemon,
)
from tests.waiting import wait_until
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client

SEED_PORT = 8000  # the seeds' curl lines say localhost:8000


def free_port(preferred: int | None = None) -> int:
    for port in (preferred, 0):
        if port is None:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise AssertionError("no free port")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    data: bytes | None = None,
    content_type: str | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request with the standard library; any status comes back as a Reply."""
    headers: dict[str, str] = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        content_type = content_type or "application/json"
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


@dataclass
class Stack:
    daemon: TestDaemon
    base: str
    port: int
    admin_token: str
    admin: Client

    def url(self, path: str) -> str:
        return self.base + path

    def tenant_token(self, tenant: str) -> str:
        return str(self.admin.token_create(tenant, "http test")["token"])


def start_stack(root: Path, run: Path, port: int, **sections: dict[str, Any]) -> Stack:
    http_cfg = {"listen": f"127.0.0.1:{port}", "create_driver": "sim", "request_timeout": 5.0}
    http_cfg.update(sections.pop("http", {}))
    cfg = make_config(root / "state", run, http=http_cfg, **sections)
    d = TestDaemon(cfg)
    d.start()
    token = read_admin_token(cfg.state_dir)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(base), timeout=30, what=f"the gateway on {base} answers /healthz")
    return Stack(d, base, port, token, Client(cfg.control_endpoint, token, timeout=5))


def _healthy(base: str) -> bool:
    try:
        return http("GET", base + "/healthz", timeout=1).status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One daemon + gateway per test module (the gateway subprocess takes a second to start).
    On port 8000 when it is free, so the seeds' curl lines run exactly as written."""
    root = Path(tempfile.mkdtemp(prefix="wzh", dir="/tmp"))
    s = start_stack(
        root,
        root / "run",
        free_port(SEED_PORT),
        queue={"max_size": 5, "max_text_length": 1000, "pacing_interval": 0.0},
        http={"max_body": 65536},
    )
    yield s
    s.admin.close()
    s.daemon.stop(timeout=10)
    shutil.rmtree(root, ignore_errors=True)
