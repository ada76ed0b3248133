"""What a fetched file is: its mime type (declared, sniffed, or guessed from the URL) and the
WhatsApp message kind it goes out as."""

from __future__ import annotations

import mimetypes
import posixpath
from urllib.parse import urlsplit

OCTET_STREAM = "application/octet-stream"
SNIFF_BYTES = 16  # enough for every magic number below
KINDS = ("image", "video", "audio", "document", "sticker")


def sniff(head: bytes) -> str | None:
    """The mime type the first bytes announce, for the formats WhatsApp media commonly use."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    return None


def from_url(url: str) -> str | None:
    path = urlsplit(url).path
    mime, _ = mimetypes.guess_type(posixpath.basename(path), strict=False)
    return mime


def choose_mime(declared: str | None, head: bytes, url: str) -> str:
    """The client's mime, else the bytes', else the URL extension's, else octet-stream."""
    if declared:
        return declared.split(";", 1)[0].strip().lower()
    return sniff(head) or from_url(url) or OCTET_STREAM


def kind_of(mime: str) -> str:
    """image, video, audio, sticker (webp) or document (anything else)."""
    major = mime.split("/", 1)[0]
    if mime == "image/webp":
        return "sticker"
    if major in ("image", "video", "audio"):
        return major
    return "document"


def declared_kind(declared: str | None) -> str | None:
    """The kind a declared mime promises, before any byte arrived (for the size cap)."""
    return kind_of(declared.split(";", 1)[0].strip().lower()) if declared else None


__all__ = ["KINDS", "OCTET_STREAM", "choose_mime", "declared_kind", "from_url", "kind_of", "sniff"]
