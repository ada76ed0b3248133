"""The seeds' three API lines (shared/seeds/003: "Queue Status API", "API Endpoints"), run with
curl against a live daemon + gateway, as written (only the placeholders filled in; the port
is the seeds' 8000 unless another program holds it)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.control.conftest import online
from tests.http.conftest import SEED_PORT, Stack
from tests.waiting import wait_until
from waz_actors.control.client import Client

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(stack: Stack, line: str, *extra: str) -> dict:
    if stack.port != SEED_PORT:
        line = line.replace(f"localhost:{SEED_PORT}", f"localhost:{stack.port}")
    out = subprocess.run(
        ["curl", "-sS", *extra, line], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def seed(stack: Stack) -> tuple[str, str]:
    token = stack.tenant_token("seedshop")
    with Client(stack.daemon.cfg.control_endpoint, token) as c:
        c.instance_create("sim", "6880714A02801")
        online(c, "6880714A02801")
    return "6880714A02801", token


def test_queue_status_curl_line(stack: Stack, seed: tuple[str, str]) -> None:
    instance_id, token = seed
    line = "http://localhost:8000/queue-status/<instance_id>?access_token=<token>"
    got = curl(stack, line.replace("<instance_id>", instance_id).replace("<token>", token))
    assert got["status"] == "success", got
    data = got["data"]
    for key in ("depth", "in_flight", "success_rate", "health", "recommendations"):
        assert key in data
    assert data["health"] in ("healthy", "warning", "critical")


def test_send_message_then_instance(stack: Stack, seed: tuple[str, str]) -> None:
    instance_id, token = seed
    url = f"http://localhost:8000/send-message/{instance_id}?access_token={token}"
    sent = curl(
        stack, url, "-X", "POST", "-H", "Content-Type: application/json",
        "-d", json.dumps({"to": "6281234567890@s.whatsapp.net", "message": "halo",
                          "idempotency_key": "seed-1"}),
    )  # fmt: skip
    assert sent["status"] == "success", sent
    mid = sent["data"]["message_id"]
    with Client(stack.daemon.cfg.control_endpoint, token) as c:
        wait_until(lambda: c.message_get(mid)["status"] == "sent", what="the message sent")
    # The seeds' form-encoded variant, chat_id and caption (WAZIPER's names): same key, same id.
    again = curl(
        stack, url, "-X", "POST",
        "-d", "chat_id=6281234567890&caption=halo&idempotency_key=seed-1",
    )  # fmt: skip
    assert again["data"]["message_id"] == mid and again["data"]["created"] is False

    line = "http://localhost:8000/instance?instance_id=<id>"
    got = curl(stack, line.replace("<id>", instance_id) + f"&access_token={token}")
    assert got["status"] == "success", got
    assert got["data"]["id"].endswith("@s.whatsapp.net")


def test_another_tenants_instance_is_not_found(stack: Stack, seed: tuple[str, str]) -> None:
    other = stack.tenant_token("someone-else")
    line = "http://localhost:8000/queue-status/<instance_id>?access_token=<token>"
    got = curl(stack, line.replace("<instance_id>", seed[0]).replace("<token>", other))
    assert got["status"] == "error" and got["code"] == "not_found"
