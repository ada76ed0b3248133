"""Every error status of the native API (docs/http.md, "Errors"), against a live daemon and
gateway: the body is always {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.control.conftest import online
from tests.http.conftest import Reply, Stack, free_port, http
from tests.waiting import wait_until
from waz_actors.control.client import Client
from waz_actors.http import errors


def err(r: Reply, status: int, code: str) -> dict:
    assert r.status == status, (r.status, r.body)
    body = r.json()["error"]
    assert body["code"] == code and isinstance(body["message"], str), body
    assert isinstance(body["details"], dict)
    return body


@pytest.fixture(scope="module")
def shop(stack: Stack) -> Iterator[str]:
    token = stack.tenant_token("errshop")
    with Client(stack.daemon.cfg.control_endpoint, token) as c:
        c.instance_create("sim", "err-1")
        c.instance_create("sim", "err-stopped")
        online(c, "err-1")
    yield token


def test_400_malformed_bodies_and_bad_arguments(stack: Stack, shop: str) -> None:
    url = stack.url("/v1/instances/err-1/messages")
    for data, ctype in (
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
        (b'{"a":' * 5000, "application/json"),
    ):
        body = err(http("POST", url, token=shop, data=data, content_type=ctype), 400, "bad_request")
        # A broken multipart form may parse as an empty one: then `to` is what is missing.
        assert body["details"]["field"] in (("body", "to") if "multipart" in ctype else ("body",))
    body = err(http("POST", url, token=shop, json_body={"to": "12"}), 400, "bad_request")
    assert body["details"]["field"] == "to"
    r = http("GET", stack.url("/v1/instances/err-1/queue/messages?limit=many"), token=shop)
    assert err(r, 400, "bad_request")["details"]["field"] == "limit"


def test_401_without_or_with_a_bad_token(stack: Stack) -> None:
    err(http("GET", stack.url("/v1/instances")), 401, "unauthorized")
    err(http("GET", stack.url("/v1/instances"), token="waz_nope"), 401, "unauthorized")
    err(http("GET", stack.url("/v1/tokens"), token=stack.tenant_token("x")), 401, "unauthorized")


def test_404_unknown_instance_and_route(stack: Stack, shop: str) -> None:
    err(http("GET", stack.url("/v1/instances/nope"), token=shop), 404, "not_found")
    err(http("GET", stack.url("/v1/no/such/route"), token=shop), 404, "not_found")


def test_409_exists_and_invalid_state(stack: Stack, shop: str) -> None:
    r = http("POST", stack.url("/v1/instances"), token=shop,
             json_body={"driver": "sim", "instance_id": "err-1"})  # fmt: skip
    err(r, 409, "exists")
    err(http("POST", stack.url("/v1/instances/err-1/pair"), token=shop), 409, "invalid_state")


def test_413_body_over_the_limit_and_text_too_long(stack: Stack, shop: str) -> None:
    url = stack.url("/v1/instances/err-1/messages")
    big = {"to": "6281234567890", "text": "x" * 70_000}  # http.max_body is 65536 here
    err(http("POST", url, token=shop, json_body=big), 413, "too_large")
    long = {"to": "6281234567890", "text": "x" * 1001}  # queue.max_text_length is 1000
    body = err(http("POST", url, token=shop, json_body=long), 413, "too_large")
    assert body["details"]["field"] == "text"


def test_429_queue_full_with_retry_after(stack: Stack, shop: str) -> None:
    url = stack.url("/v1/instances/err-stopped/messages")  # stopped: the queue only fills
    for i in range(5):
        r = http("POST", url, token=shop, json_body={"to": "6281234567890", "text": f"m{i}"})
        assert r.status == 201, r.body
    r = http("POST", url, token=shop, json_body={"to": "6281234567890", "text": "one more"})
    err(r, 429, "queue_full")
    assert int(r.headers["retry-after"]) > 0


def test_429_busy_with_retry_after(stack: Stack, shop: str) -> None:
    control = stack.daemon.control
    assert control is not None
    limit = control.dispatcher.max_inflight
    control.dispatcher.max_inflight = 0  # as if max_inflight requests were in flight already
    try:
        r = http("POST", stack.url("/v1/instances/err-1/messages"), token=shop,
                 json_body={"to": "6281234567890", "text": "shed"})  # fmt: skip
    finally:
        control.dispatcher.max_inflight = limit
    err(r, 429, "busy")
    assert r.headers["retry-after"] == "1"


def test_503_shutting_down_with_retry_after(stack: Stack, shop: str) -> None:
    fleet = stack.daemon.fleet
    assert fleet is not None
    fleet.accepting = False  # what SIGTERM's drain does first
    try:
        r = http("POST", stack.url("/v1/instances/err-1/messages"), token=shop,
                 json_body={"to": "6281234567890", "text": "late"})  # fmt: skip
    finally:
        fleet.accepting = True
    err(r, 503, "shutting_down")
    assert int(r.headers["retry-after"]) > 0


def test_503_when_the_daemon_is_unreachable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "waz_actors", "http", "--listen", f"127.0.0.1:{port}",
         "--endpoint", f"ipc://{tmp_path}/nobody.sock", "--timeout", "0.3",
         "--admin-token-file", str(tmp_path / "none")],
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> Reply | None:
            try:
                return http("GET", base + "/healthz", timeout=2)
            except OSError:
                return None

        health = wait_until(up, timeout=30, what="the lone gateway listens")
        assert health.status == 503
        started = time.monotonic()
        r = http("GET", base + "/v1/instances", token="waz_x")
        err(r, 503, "unreachable")
        assert int(r.headers["retry-after"]) > 0
        assert time.monotonic() - started < 5
        metrics = http("GET", base + "/metrics").body.decode()
        assert "waz_daemon_up 0.0" in metrics
    finally:
        proc.terminate()
        proc.wait(10)


def test_status_table() -> None:
    """Codes a live daemon cannot be made to answer on demand here (quota_exceeded and
    storage_full come from other branches, internal from a bug) map like the live ones."""
    assert errors.status_for("busy") == errors.status_for("quota_exceeded") == 429
    assert errors.status_for("storage_full") == errors.status_for("shutting_down") == 503
    assert errors.status_for("internal") == errors.status_for("some_new_code") == 500
    assert errors.retry_after("busy", {}) == 1
    assert errors.retry_after("quota_exceeded", {"retry_after": 12.4}) == 12
    assert errors.retry_after("not_found", {}) is None
    r = errors.error_response("internal", "boom")
    assert r.status_code == 500 and "retry-after" not in r.headers


def test_500_internal_when_the_gateway_itself_fails(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A bug in a route (here a dashboard-like extra route that raises) is a logged 500 with
    the error body, and the gateway keeps serving. uvicorn in a thread, on 127.0.0.1."""
    import threading

    import uvicorn
    from starlette.routing import Route

    from waz_actors.http.app import build_app
    from waz_actors.http.gateway import Settings

    async def boom(_request: object) -> None:
        raise RuntimeError("a bug")

    app = build_app(Settings(endpoint=f"ipc://{tmp_path}/none.sock"), [Route("/boom", boom)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=30, what="uvicorn started")
        r = http("GET", f"http://127.0.0.1:{port}/boom")
        err(r, 500, "internal")
        assert http("GET", f"http://127.0.0.1:{port}/openapi.json").status == 200
    finally:
        server.should_exit = True
        thread.join(10)
