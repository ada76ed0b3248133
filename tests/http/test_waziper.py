"""WAZIPER's routes with its field names and answers: a panel switches by base URL alone."""

from __future__ import annotations

import base64
import urllib.parse

import pytest

from tests.control.conftest import online
from tests.http.conftest import Stack, http
from tests.waiting import wait_until
from waz_actors.control.client import Client


@pytest.fixture(scope="module")
def panel(stack: Stack) -> str:
    return stack.tenant_token("panel")


def q(stack: Stack, path: str, token: str, **params: str) -> str:
    return stack.url(path) + "?" + urllib.parse.urlencode({"access_token": token, **params})


def test_form_encoded_send_message_with_chat_id_and_caption(stack: Stack, panel: str) -> None:
    with Client(stack.daemon.cfg.control_endpoint, panel) as c:
        c.instance_create("sim", "wz-send")
        online(c, "wz-send")
        form = urllib.parse.urlencode(
            {"instance_id": "wz-send", "chat_id": "6281234567890", "caption": "Pesanan dikirim"}
        ).encode()
        r = http("POST", q(stack, "/send_message", panel), data=form,
                 content_type="application/x-www-form-urlencoded")  # fmt: skip
        got = r.json()
        assert r.status == 200 and got["status"] == "success", got
        mid = got["data"]["message_id"]
        msg = wait_until(lambda: (m := c.message_get(mid))["status"] == "sent" and m)
        assert msg["text"] == "Pesanan dikirim" and msg["to"] == "6281234567890"
        # chat_id as a JSON number and a media_url with filename: a media message.
        r = http("POST", q(stack, "/send_message", panel, instance_id="wz-send"), json_body={
            "chat_id": 6281234567890, "caption": "nota", "media_url": "https://example.com/a.pdf",
            "filename": "a.pdf"})  # fmt: skip
        media = c.message_get(r.json()["data"]["message_id"])["media"]
        assert media == {"url": "https://example.com/a.pdf", "caption": "nota", "filename": "a.pdf"}
        # whatsapp-web.js' @c.us form of a JID is accepted too.
        r = http("POST", q(stack, "/send_message", panel, instance_id="wz-send"),
                 json_body={"chat_id": "6281234567890@c.us", "caption": "hi"})  # fmt: skip
        assert r.json()["status"] == "success"


def test_send_message_errors_keep_waziper_shape(stack: Stack, panel: str) -> None:
    r = http("POST", q(stack, "/send_message", panel, instance_id="wz-none"),
             json_body={"chat_id": "6281234567890", "caption": "x"})  # fmt: skip
    assert r.status == 200 and r.json()["status"] == "error" and r.json()["code"] == "not_found"
    r = http("POST", q(stack, "/send_message", panel, instance_id="wz-send"), json_body={})
    assert r.json()["status"] == "error" and r.json()["code"] == "bad_request"


def test_get_qrcode_creates_an_unknown_instance(stack: Stack, panel: str) -> None:
    """WAZIPER's panel makes the id up and asks for a QR; the sim links a new instance at once,
    so the answer here is "already linked", but the instance now exists in the panel's tenant."""
    http("GET", q(stack, "/get_qrcode", panel, instance_id="wz-made"))
    with Client(stack.daemon.cfg.control_endpoint, panel) as c:
        assert c.instance_get("wz-made")["driver"] == "sim"


def test_get_qrcode_pairs_and_instance_says_relogin(stack: Stack, panel: str) -> None:
    with Client(stack.daemon.cfg.control_endpoint, panel) as c:
        c.instance_create("sim", "wz-new")
        online(c, "wz-new")
        c.instance_logout("wz-new")
    r = http("GET", q(stack, "/get_qrcode", panel, instance_id="wz-new")).json()
    assert r["status"] == "success", r
    assert r["base64"].startswith("data:image/png;base64,")
    assert base64.b64decode(r["base64"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    r = http("GET", q(stack, "/instance", panel, instance_id="wz-new")).json()
    assert r["status"] == "error" and r["relogin"] is True
    stack.admin.sim_fault("wz-new", "complete_pairing")
    with Client(stack.daemon.cfg.control_endpoint, panel) as c:
        wait_until(lambda: c.instance_get("wz-new")["state"] == "online", what="paired")
    r = http("GET", q(stack, "/instance", panel, instance_id="wz-new")).json()
    assert r["status"] == "success" and r["data"]["id"].endswith("@s.whatsapp.net")
    # Online: no QR to show, and WAZIPER's answer says why.
    r = http("GET", q(stack, "/get_qrcode", panel, instance_id="wz-new")).json()
    assert r["status"] == "error" and r["code"] == "invalid_state"
    r = http("POST", q(stack, "/reset_session", panel, instance_id="wz-new")).json()
    assert r["status"] == "success"
    r = http("GET", q(stack, "/logout", panel, instance_id="wz-new")).json()
    assert r["status"] == "success" and r["data"]["state"] == "logged_out"


def test_get_groups(stack: Stack, panel: str) -> None:
    with Client(stack.daemon.cfg.control_endpoint, panel) as c:
        c.instance_create("sim", "wz-groups")
        online(c, "wz-groups")
    r = http("GET", q(stack, "/get_groups", panel, instance_id="wz-groups")).json()
    assert r["status"] == "success" and isinstance(r["data"], list), r
    # The sim puts every instance in a few groups: WAZIPER's panel lists id, subject, size.
    assert r["data"] and all(g["id"].endswith("@g.us") and g["subject"] for g in r["data"]), r


def test_missing_instance_id_and_token(stack: Stack, panel: str) -> None:
    r = http("GET", q(stack, "/instance", panel)).json()
    assert r["status"] == "error" and r["code"] == "bad_request"
    r = http("GET", stack.url("/instance?instance_id=x")).json()
    assert r["status"] == "error" and r["code"] == "unauthorized"
