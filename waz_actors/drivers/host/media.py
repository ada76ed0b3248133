"""Media sends in a driver host: fetch (outside the library lock), upload once, build the message.

The bytes are fetched by the host that sends them (net/fetch.py, with the daemon's [media] limits
given in each send command). The upload response is kept per message id and per (sha256, kind)
for the host's life (bounded): a retry of the message, or another message with the same file,
sends the uploaded media again without fetching or uploading anything.

neonize's `build_*_message` helpers re-read the file, make thumbnails (Pillow) and probe audio and
video with ffmpeg, and always upload: we call `client.upload` ourselves and fill whatsmeow's
message protos directly, so no ffmpeg is needed and an upload is reused. No thumbnail is sent.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from waz_actors.drivers.base import SendResult
from waz_actors.drivers.media import media_error
from waz_actors.net.fetch import FetchError, Limits, fetch

KEPT = 500  # upload responses kept per host


class Uploads:
    """Upload responses by message id and by (sha256, kind), the newest KEPT of each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # session workers of one host share it
        self._by_mid: OrderedDict[str, tuple[dict[str, Any], Any]] = OrderedDict()
        self._by_digest: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def for_message(self, mid: str) -> tuple[dict[str, Any], Any] | None:
        with self._lock:
            return self._by_mid.get(mid)

    def by_digest(self, sha256: str, kind: str) -> Any:
        with self._lock:
            return self._by_digest.get((sha256, kind))

    def remember(self, mid: str, info: dict[str, Any], upload: Any) -> None:
        with self._lock:
            self._by_mid[mid] = (info, upload)
            self._by_digest[(info["sha256"], info["kind"])] = upload
            for d in (self._by_mid, self._by_digest):
                while len(d) > KEPT:
                    d.popitem(last=False)


def media_type(kind: str) -> Any:
    from neonize.utils.enum import MediaType

    return {
        "image": MediaType.MediaImage,
        "sticker": MediaType.MediaImage,
        "video": MediaType.MediaVideo,
        "audio": MediaType.MediaAudio,
    }.get(kind, MediaType.MediaDocument)


def build_message(kind: str, upload: Any, mime: str, media: Mapping[str, Any], text: str) -> Any:
    """whatsmeow's message proto for an uploaded file; the caption is `caption`, else `text`."""
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as pb

    fields: dict[str, Any] = {
        "URL": upload.url,
        "directPath": upload.DirectPath,
        "fileEncSHA256": upload.FileEncSHA256,
        "fileLength": upload.FileLength,
        "fileSHA256": upload.FileSHA256,
        "mediaKey": upload.MediaKey,
        "mimetype": mime,
    }
    caption = media.get("caption") or text or None
    if kind == "sticker":
        return pb.Message(stickerMessage=pb.StickerMessage(**fields))
    if kind == "audio":
        return pb.Message(audioMessage=pb.AudioMessage(**fields, PTT=bool(media.get("ptt"))))
    if caption:
        fields["caption"] = caption
    if kind == "image":
        return pb.Message(imageMessage=pb.ImageMessage(**fields))
    if kind == "video":
        return pb.Message(videoMessage=pb.VideoMessage(**fields))
    name = media.get("filename")
    if name:
        fields["fileName"] = fields["title"] = name
    return pb.Message(documentMessage=pb.DocumentMessage(**fields))


def prepare(
    client: Any,
    lock: threading.Lock,
    uploads: Uploads,
    mid: str,
    text: str,
    media: Mapping[str, Any],
    limits: Mapping[str, Any] | None,
) -> tuple[Any, dict[str, Any]] | SendResult:
    """The message to send and what was fetched, or the failed SendResult to report.

    Runs on the session's worker thread: the fetch holds no lock, the upload holds `lock` (the
    host's library lock) only for the library call.
    """
    found = uploads.for_message(mid)
    if found is not None:
        info, upload = found
        return build_message(info["kind"], upload, info["mime"], media, text), info
    url, mime = media.get("url"), media.get("mime")
    try:
        if not isinstance(url, str):
            raise FetchError("no url", permanent=True)
        fetched = fetch(
            url, Limits.from_mapping(limits), mime=mime if isinstance(mime, str) else None
        )
    except FetchError as e:
        return media_error(mid, e)
    info = fetched.info()
    try:
        upload = uploads.by_digest(fetched.sha256, fetched.kind)
        if upload is None:
            data = fetched.read()  # the library takes bytes; at most the kind's size cap
            with lock:
                upload = client.upload(data, media_type(fetched.kind))
    except Exception as e:
        # Offline, WhatsApp's media servers unreachable, a refused upload: try again later.
        why = str(e) or type(e).__name__
        return SendResult(mid, ok=False, error=f"media upload failed: {why}", media=info)
    finally:
        fetched.discard()
    uploads.remember(mid, info, upload)
    return build_message(fetched.kind, upload, fetched.mime, media, text), info


__all__ = ["KEPT", "Uploads", "build_message", "media_type", "prepare"]
