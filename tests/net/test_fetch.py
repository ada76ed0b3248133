"""fetch() against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import socket
import time

import pytest

from tests.net.media_server import JPEG, PDF, MediaServer, endless, stall
from waz_actors.net import fetch as fetch_mod
from waz_actors.net.fetch import FetchError, Limits, fetch

OPEN = Limits(allow_private=True, timeout=5.0, connect_timeout=2.0)


def test_fetches_to_a_file_with_size_sha256_and_sniffed_kind(media_server: MediaServer) -> None:
    url = media_server.add("/a", JPEG)
    got = fetch(url, OPEN)
    try:
        assert got.size == len(JPEG) and got.sha256 == hashlib.sha256(JPEG).hexdigest()
        assert (got.mime, got.kind) == ("image/jpeg", "image")
        assert got.read() == JPEG
    finally:
        got.discard()
    assert not os.path.exists(got.path)


def test_declared_mime_and_extension(media_server: MediaServer) -> None:
    got = fetch(media_server.add("/x.pdf", b"plain words"), OPEN)
    got.discard()
    assert (got.mime, got.kind) == ("application/pdf", "document")
    got = fetch(media_server.add("/blob", PDF), OPEN, mime="application/x-thing")
    got.discard()
    assert (got.mime, got.kind) == ("application/x-thing", "document")


def test_loopback_refused_by_default(media_server: MediaServer) -> None:
    url = media_server.add("/a", JPEG)
    with pytest.raises(FetchError, match="loopback") as e:
        fetch(url, Limits())
    assert e.value.permanent
    assert media_server.hits.get("/a") is None  # never connected


def test_localhost_name_checked_on_its_resolved_address(media_server: MediaServer) -> None:
    url = media_server.add("/a", JPEG).replace("127.0.0.1", "localhost")
    with pytest.raises(FetchError, match=r"localhost: address .* is loopback"):
        fetch(url, Limits())


def test_redirects_followed_and_each_hop_checked(
    media_server: MediaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = media_server.add("/final.jpg", JPEG)
    media_server.add("/r1", b"", status=302, Location="/r2")
    start = media_server.add("/r2", b"", status=301, Location=target)
    got = fetch(start.replace("/r2", "/r1"), OPEN)
    got.discard()
    assert got.url == target and got.size == len(JPEG)
    media_server.add("/loop", b"", status=302, Location="/loop")
    with pytest.raises(FetchError, match="redirects"):
        fetch(media_server.url("/loop"), OPEN)
    # A public first hop that redirects to loopback is refused at the second hop.
    seen: list[str] = []

    def only_first_public(address: str, *, allow_private: bool = False) -> None:
        seen.append(address)
        if len(seen) > 1:
            raise fetch_mod.Refused(f"address {address} is loopback")

    monkeypatch.setattr(fetch_mod, "check_address", only_first_public)
    with pytest.raises(FetchError, match="loopback") as e:
        fetch(start, Limits(timeout=5.0))
    assert e.value.permanent and len(seen) == 2


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(404, True), (410, True), (403, True), (500, False), (503, False), (429, False)],
)
def test_status_codes(media_server: MediaServer, status: int, permanent: bool) -> None:
    url = media_server.add(f"/s{status}", b"no", status=status)
    with pytest.raises(FetchError, match=f"HTTP {status}") as e:
        fetch(url, OPEN)
    assert e.value.permanent is permanent
    assert "/s" not in str(e.value)  # the path (maybe a secret) is not in the error


def test_too_large_refused_from_content_length(media_server: MediaServer) -> None:
    url = media_server.add("/big.pdf", PDF)
    with pytest.raises(FetchError, match=r"too large.*max_document_bytes") as e:
        fetch(url, Limits(allow_private=True, max_document_bytes=1000))
    assert e.value.permanent


def test_too_large_stream_stopped_without_reading_it_all(media_server: MediaServer) -> None:
    url = media_server.add("/endless", endless("/endless"))
    before = set(os.listdir(os.environ.get("TMPDIR", "/tmp")))
    with pytest.raises(FetchError, match="too large") as e:
        fetch(url, Limits(allow_private=True, max_document_bytes=256 * 1024))
    assert e.value.permanent
    time.sleep(0.2)  # let the server notice the hang-up (a figure, not a wait on a condition)
    assert media_server.written.get("/endless", 0) < 64 * 1024 * 1024
    leftovers = {n for n in set(os.listdir(os.environ.get("TMPDIR", "/tmp"))) - before}
    assert not any(n.startswith("waz-media-") for n in leftovers)


def test_image_over_max_bytes_refused_after_sniffing(media_server: MediaServer) -> None:
    url = media_server.add("/img", JPEG)
    with pytest.raises(FetchError, match=r"media\.max_bytes") as e:
        fetch(url, Limits(allow_private=True, max_bytes=100))
    assert e.value.permanent
    with pytest.raises(FetchError, match=r"media\.max_bytes"):  # declared: refused up front
        fetch(url, Limits(allow_private=True, max_bytes=100), mime="image/jpeg")


def test_timeout_is_transient(media_server: MediaServer) -> None:
    url = media_server.add("/slow", stall(3.0))
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="timed out") as e:
        fetch(url, Limits(allow_private=True, timeout=0.5))
    assert not e.value.permanent and time.monotonic() - t0 < 2.5


def test_connection_refused_is_transient() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(FetchError, match="cannot connect") as e:
        fetch(f"http://127.0.0.1:{port}/x", OPEN)
    assert not e.value.permanent


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a", "file:///etc/passwd", "http:///x", "http://h:99999/"]
)
def test_bad_urls_are_permanent(url: str) -> None:
    with pytest.raises(FetchError) as e:
        fetch(url, OPEN)
    assert e.value.permanent
