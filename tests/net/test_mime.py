from __future__ import annotations

import pytest

from waz_actors.net.mime import choose_mime, kind_of, sniff


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        (b"OggS\x00\x02", "audio/ogg"),
        (b"ID3\x03\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x00", "audio/mpeg"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"PK\x03\x04\x14\x00", "application/zip"),
        (b"hello world", None),
    ],
)
def test_sniff(head: bytes, mime: str | None) -> None:
    assert sniff(head) == mime


def test_choose_mime_order() -> None:
    jpeg = b"\xff\xd8\xff\xe0"
    assert choose_mime("Image/PNG; q=1", jpeg, "http://x/a.pdf") == "image/png"  # declared
    assert choose_mime(None, jpeg, "http://x/a.pdf") == "image/jpeg"  # bytes
    assert choose_mime(None, b"text", "http://x/a.pdf?x=1") == "application/pdf"  # extension
    assert choose_mime(None, b"text", "http://x/blob") == "application/octet-stream"


@pytest.mark.parametrize(
    ("mime", "kind"),
    [
        ("image/jpeg", "image"),
        ("image/webp", "sticker"),
        ("video/mp4", "video"),
        ("audio/ogg", "audio"),
        ("application/pdf", "document"),
        ("application/octet-stream", "document"),
    ],
)
def test_kind(mime: str, kind: str) -> None:
    assert kind_of(mime) == kind
