"""Media in the driver host: fetch, upload through the real library, reuse of uploads.

No session can come online here (no WhatsApp), so these run the host's media path in-process
on a real neonize client that is not connected: its upload is refused by the library, which the
host must report as a retryable failure carrying what it fetched, never a crash.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("neonize")

from tests.net.media_server import JPEG, PDF, MediaServer
from waz_actors.drivers.base import SendResult
from waz_actors.drivers.host import main as host_main
from waz_actors.drivers.host import media as host_media
from waz_actors.drivers.whatsmeow_events import from_wire
from waz_actors.net.fetch import Limits

OPEN = Limits(allow_private=True, timeout=5.0).as_dict()


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    s = MediaServer()
    yield s
    s.close()


class FakeHost:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.uploads = host_media.Uploads()

    def post(self, msg: dict[str, Any]) -> None:
        self.posted.append(msg)


def test_upload_refused_by_the_library_is_retryable(media_server: MediaServer, workdir: Path):
    from neonize.client import NewClient

    host = FakeHost()
    session = host_main.Session(
        host,  # type: ignore[arg-type]
        {"iid": "u1", "gen": 1, "db": str(workdir / "u1.db"), "proxy": ""},
    )
    session.client = NewClient(str(workdir / "u1.db"), uuid="u1.1")  # never connected
    url = media_server.add("/cat.jpg", JPEG)
    session._do_send("m1", "4915112345678", "", {"url": url, "caption": "hi"}, OPEN)
    [msg] = host.posted
    ev = from_wire(msg["ev"])
    assert isinstance(ev, SendResult) and not ev.ok and not ev.permanent
    assert ev.error is not None and ev.error.startswith("media upload failed")
    assert ev.media == {
        "mime": "image/jpeg",
        "kind": "image",
        "size": len(JPEG),
        "sha256": hashlib.sha256(JPEG).hexdigest(),
    }
    # A refused URL fails at once, permanently, before any library call.
    session._do_send("m2", "4915112345678", "", {"url": media_server.url("/nope")}, OPEN)
    ev = from_wire(host.posted[-1]["ev"])
    assert isinstance(ev, SendResult) and ev.permanent and "HTTP 404" in (ev.error or "")
    session._do_send("m3", "4915112345678", "", {"url": url}, Limits().as_dict())
    ev = from_wire(host.posted[-1]["ev"])
    assert isinstance(ev, SendResult) and ev.permanent and "loopback" in (ev.error or "")


class RecordingClient:
    """The library's `upload` as far as the host uses it (its response fields)."""

    def __init__(self) -> None:
        self.uploads: list[tuple[int, Any]] = []

    def upload(self, data: bytes, media_type: Any) -> Any:
        self.uploads.append((len(data), media_type))
        return SimpleNamespace(
            url="https://mmg.example/x",
            DirectPath="/x",
            FileEncSHA256=b"e" * 32,
            FileLength=len(data),
            FileSHA256=hashlib.sha256(data).digest(),
            MediaKey=b"k" * 32,
        )


def test_uploads_are_reused_per_message_and_per_file(media_server: MediaServer):
    from neonize.utils.enum import MediaType

    client, lock, uploads = RecordingClient(), threading.Lock(), host_media.Uploads()
    url = media_server.add("/cat", JPEG)
    first = host_media.prepare(client, lock, uploads, "m1", "", {"url": url}, OPEN)
    again = host_media.prepare(client, lock, uploads, "m1", "", {"url": url}, OPEN)  # a retry
    assert not isinstance(first, SendResult) and not isinstance(again, SendResult)
    assert media_server.hits["/cat"] == 1 and client.uploads == [(len(JPEG), MediaType.MediaImage)]
    assert first[0] == again[0] and first[1] == again[1]
    other = host_media.prepare(client, lock, uploads, "m2", "", {"url": url}, OPEN)
    assert not isinstance(other, SendResult)
    assert media_server.hits["/cat"] == 2 and len(client.uploads) == 1  # same bytes: no upload
    msg = first[0]
    assert msg.imageMessage.mimetype == "image/jpeg" and msg.imageMessage.fileLength == len(JPEG)


def test_message_kinds(media_server: MediaServer):
    client, lock, uploads = RecordingClient(), threading.Lock(), host_media.Uploads()
    doc = media_server.add("/r", PDF)
    ready = host_media.prepare(
        client, lock, uploads, "d1", "see this", {"url": doc, "filename": "r.pdf"}, OPEN
    )
    assert not isinstance(ready, SendResult)
    d = ready[0].documentMessage
    assert (d.fileName, d.caption, d.mimetype) == ("r.pdf", "see this", "application/pdf")
    ogg = media_server.add("/v", b"OggS\x00\x02" + b"\x00" * 500)
    ready = host_media.prepare(client, lock, uploads, "a1", "", {"url": ogg, "ptt": True}, OPEN)
    assert not isinstance(ready, SendResult) and ready[0].audioMessage.PTT is True
    webp = media_server.add("/s", b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 100)
    ready = host_media.prepare(client, lock, uploads, "s1", "", {"url": webp}, OPEN)
    assert not isinstance(ready, SendResult) and ready[0].HasField("stickerMessage")
    mp4 = media_server.add("/m", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    ready = host_media.prepare(client, lock, uploads, "v1", "", {"url": mp4, "caption": "c"}, OPEN)
    assert not isinstance(ready, SendResult) and ready[0].videoMessage.caption == "c"


def test_driver_hands_media_and_limits_to_the_host(workdir: Path):
    from tests.whatsmeow.conftest import make_driver, small_config
    from waz_actors.drivers.base import OutgoingMessage
    from waz_actors.drivers.host.client import HostPool

    pool = HostPool(small_config(), workdir / "run", workdir / "state")  # never started
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    pool.send = lambda *a, **kw: sent.append((a, kw))  # type: ignore[method-assign]
    drv, sink = make_driver(pool, "w1", "socks5://127.0.0.1:9", workdir)
    drv.connect()
    drv.send(OutgoingMessage("m1", "4915112345678", media={"url": "https://x.example/a.jpg"}))
    [(args, extra)] = sent
    assert args == ("w1", "m1", "4915112345678", "")
    assert extra["media"] == {"url": "https://x.example/a.jpg"}
    assert extra["limits"] == Limits().as_dict() and extra["limits"]["allow_private"] is False
    assert sink.events == []
