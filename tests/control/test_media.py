"""Media sends end to end over the control socket on the sim, with media served by a real HTTP
server on 127.0.0.1 (issue 12)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.control.conftest import TestDaemon, online
from tests.net.media_server import JPEG, PDF, MediaServer, endless, stall
from tests.waiting import wait_until
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client

PHONE = "5511999999999"
FINAL = {"sent", "failed", "cancelled", "expired"}
# processing_timeout stays at its default: a media send is given the fetch's timeouts on top.
QUEUE = {"pacing_interval": 0.0, "max_retries": 2}


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    s = MediaServer()
    yield s
    s.close()


@pytest.fixture
def client_of() -> Iterator[Callable[[TestDaemon], Client]]:
    made: list[Client] = []

    def make(d: TestDaemon) -> Client:
        c = Client(d.cfg.control_endpoint, read_admin_token(d.cfg.state_dir), timeout=5)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def settled(c: Client, mid: str) -> dict[str, Any]:
    wait_until(lambda: c.message_get(mid)["status"] in FINAL, what=f"{mid} settled", timeout=20)
    return c.message_get(mid)


def send(c: Client, media: dict[str, Any]) -> str:
    return str(c.message_send("m1", PHONE, media=media)["message_id"])


@pytest.fixture
def open_daemon(
    start_daemon: Callable[..., TestDaemon], client_of: Callable[[TestDaemon], Client]
) -> tuple[TestDaemon, Client]:
    d = start_daemon(
        queue=QUEUE,
        media={
            "allow_private_urls": True,
            "timeout": 0.5,
            "max_bytes": 64 * 1024,
            "max_document_bytes": 256 * 1024,
        },
    )
    c = client_of(d)
    c.instance_create("sim", "m1")
    online(c, "m1")
    return d, c


def test_media_fetched_sent_and_shown(
    open_daemon: tuple[TestDaemon, Client], media_server: MediaServer
) -> None:
    d, c = open_daemon
    url = media_server.add("/cat", JPEG)
    mid = send(c, {"url": url, "caption": "a cat"})
    got = settled(c, mid)
    assert got["status"] == "sent", got
    digest = hashlib.sha256(JPEG).hexdigest()
    assert got["media"] == {
        "url": url,
        "caption": "a cat",
        "mime": "image/jpeg",
        "kind": "image",
        "size": len(JPEG),
        "sha256": digest,
    }
    assert d.sim.delivered_media(mid) == {  # type: ignore[union-attr]
        "size": len(JPEG),
        "sha256": digest,
        "mime": "image/jpeg",
        "kind": "image",
    }
    # a document by its declared type, with its file name
    doc = media_server.add("/report", PDF)
    mid = send(c, {"url": doc, "filename": "report.pdf", "mime": "application/pdf"})
    got = settled(c, mid)
    assert got["status"] == "sent"
    assert got["media"]["kind"] == "document" and got["media"]["filename"] == "report.pdf"
    assert got["media"]["size"] == len(PDF)


def test_404_is_permanent(
    open_daemon: tuple[TestDaemon, Client], media_server: MediaServer
) -> None:
    _, c = open_daemon
    mid = send(c, {"url": media_server.url("/gone")})
    got = settled(c, mid)
    assert got["status"] == "failed" and got["attempts"] == 1
    assert got["last_error"].startswith("media: HTTP 404")
    assert media_server.hits["/gone"] == 1
    assert "media" in got and "sha256" not in got["media"]  # nothing was fetched


def test_timeout_is_retried(
    open_daemon: tuple[TestDaemon, Client], media_server: MediaServer
) -> None:
    _, c = open_daemon
    url = media_server.add("/slow", stall(2.0))
    mid = send(c, {"url": url})
    got = settled(c, mid)
    assert got["status"] == "failed" and got["attempts"] == 3  # 1 + max_retries
    assert "timed out" in got["last_error"] and "retries exhausted" in got["history"][-1]["reason"]
    assert media_server.hits["/slow"] == 3
    retries = [h for h in got["history"] if h["status"] == "queued" and "retry" in h["reason"]]
    assert len(retries) == 2


def test_too_large_refused_without_reading_it_all(
    open_daemon: tuple[TestDaemon, Client], media_server: MediaServer
) -> None:
    _, c = open_daemon
    url = media_server.add("/huge", endless("/huge"))
    mid = send(c, {"url": url})
    got = settled(c, mid)
    assert got["status"] == "failed" and got["attempts"] == 1
    assert "too large" in got["last_error"] and "max_document_bytes" in got["last_error"]
    assert media_server.written.get("/huge", 0) < 64 * 1024 * 1024
    big = media_server.add("/big.jpg", JPEG * 40)  # over max_bytes as an image
    got = settled(c, send(c, {"url": big}))
    assert got["status"] == "failed" and "media.max_bytes" in got["last_error"]


def test_private_url_refused_by_default(
    start_daemon: Callable[..., TestDaemon],
    client_of: Callable[[TestDaemon], Client],
    media_server: MediaServer,
) -> None:
    d = start_daemon(queue=QUEUE)
    c = client_of(d)
    c.instance_create("sim", "m1")
    online(c, "m1")
    mid = send(c, {"url": media_server.add("/cat", JPEG)})
    got = settled(c, mid)
    assert got["status"] == "failed" and got["attempts"] == 1
    assert "loopback" in got["last_error"] and "allow_private_urls" in got["last_error"]
    assert "/cat" not in media_server.hits  # refused before any connection
