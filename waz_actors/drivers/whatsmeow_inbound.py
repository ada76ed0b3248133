"""Incoming whatsmeow (neonize) messages as `IncomingMessage`, and the answers of the host's
requests (joined groups, IsOnWhatsApp, media download) as plain data.

Like whatsmeow_events.py this reads neonize's protobuf objects by field name and never imports
neonize, so the daemon can load it without the library.

What is not an inbox message:
- our own sends (`IsFromMe`, including the ones sent from the phone) and status updates
  (`status@broadcast`);
- history sync: whatsmeow hands the phone's past chats over as `HistorySync` events, never as
  `Message` events; they are ignored (map_event has no case for them), so pairing an account with
  years of chats adds nothing to the inbox. Messages that arrived while the session was offline
  come as ordinary `Message` events on reconnect and are stored (the WhatsApp id deduplicates);
- protocol and reaction messages, and anything without text or media.

Media: the metadata (mime, size, caption, filename) goes in `media`; `media["ref"]` is the
base64 of a waE2E Message holding only the media part (keys and direct path, thumbnail dropped),
which is all `download_any` needs, so a download works after a restart too.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from waz_actors.drivers.base import IncomingMessage

STATUS_BROADCAST = "status@broadcast"
MEDIA_FIELDS = ("imageMessage", "videoMessage", "audioMessage", "documentMessage", "stickerMessage")
_THUMBNAILS = ("JPEGThumbnail", "pngThumbnail")
CONTACT_BATCH = 50  # numbers per IsOnWhatsApp call
CONTACT_PAUSE = 0.5  # real seconds between two calls


def _jid(jid: Any) -> str:
    if jid is None or not getattr(jid, "User", ""):
        return ""
    return f"{jid.User}@{jid.Server}"


def _has(msg: Any, field: str) -> bool:
    try:
        return bool(msg.HasField(field))
    except ValueError:
        return False


def _unwrap(content: Any) -> Any:
    """The real content of ephemeral and view-once wrappers."""
    for wrapper in ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2"):
        if _has(content, wrapper):
            inner = getattr(content, wrapper)
            if _has(inner, "message"):
                return _unwrap(inner.message)
    return content


def _seconds(ts: int) -> float:
    # neonize gives Unix seconds; be lenient with a milliseconds value
    return ts / 1000.0 if ts > 10**11 else float(ts)


def media_ref(content: Any, field: str) -> str:
    """base64 of a Message holding only `field`, thumbnails cleared."""
    only = type(content)()
    getattr(only, field).CopyFrom(getattr(content, field))
    part = getattr(only, field)
    for thumb in _THUMBNAILS:
        if thumb in part.DESCRIPTOR.fields_by_name:
            part.ClearField(thumb)
    return base64.b64encode(only.SerializeToString()).decode()


def map_message(ev: Any) -> IncomingMessage | None:
    """An inbox message for one neonize `Message` event; None for what is not one (above)."""
    info = ev.Info
    source = info.MessageSource
    if source.IsFromMe:
        return None
    chat = _jid(source.Chat)
    if not chat or chat == STATUS_BROADCAST or source.Chat.Server == "broadcast":
        return None
    content = _unwrap(ev.Message)
    text: str | None = None
    if content.conversation:
        text = content.conversation
    elif _has(content, "extendedTextMessage"):
        text = content.extendedTextMessage.text or None
    media: dict[str, Any] | None = None
    for field in MEDIA_FIELDS:
        if _has(content, field):
            part = getattr(content, field)
            media = {"kind": field.removesuffix("Message"), "mime": part.mimetype}
            media["size"] = int(part.fileLength)
            for key, name in (("caption", "caption"), ("fileName", "filename")):
                if key in part.DESCRIPTOR.fields_by_name and getattr(part, key):
                    media[name] = getattr(part, key)
            media["ref"] = media_ref(content, field)
            break
    if text is None and media is None:
        return None
    return IncomingMessage(
        wa_id=info.ID,
        chat=chat,
        sender=_jid(source.Sender) or chat,
        time=_seconds(int(info.Timestamp)),
        text=text,
        media=media,
    )


def groups_answer(groups: Iterable[Any]) -> list[dict[str, Any]]:
    """`get_joined_groups()` as group.list items."""
    return [
        {"id": _jid(g.JID), "subject": g.GroupName.Name, "participants": len(g.Participants)}
        for g in groups
    ]


def contacts_answer(numbers: list[str], responses: Iterable[Any]) -> list[dict[str, Any]]:
    """`is_on_whatsapp()` answers as contact.check items, in the order asked; a number
    WhatsApp did not answer for counts as not on WhatsApp."""
    found: dict[str, Any] = {}
    for r in responses:
        found[r.Query.lstrip("+")] = r
    out = []
    for n in numbers:
        r = found.get(n)
        jid = _jid(r.JID) if r is not None and r.IsIn else None
        out.append({"number": n, "on_whatsapp": jid is not None, "jid": jid})
    return out


def batches(numbers: list[str], size: int = CONTACT_BATCH) -> list[list[str]]:
    return [numbers[i : i + size] for i in range(0, len(numbers), size)]


def ref_bytes(media: dict[str, Any]) -> bytes:
    """The serialized waE2E Message of a stored media's `ref`; ValueError when absent."""
    ref = media.get("ref")
    if not isinstance(ref, str) or not ref:
        raise ValueError("this message's media cannot be downloaded (no reference kept)")
    return base64.b64decode(ref)


__all__ = [
    "CONTACT_BATCH",
    "CONTACT_PAUSE",
    "STATUS_BROADCAST",
    "batches",
    "contacts_answer",
    "groups_answer",
    "map_message",
    "media_ref",
    "ref_bytes",
]
