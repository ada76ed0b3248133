"""The sim's incoming side: messages people send to an instance, its groups, and who is on
WhatsApp.

Rules (documented in docs/drivers.md, relied on by tests):
- every instance is in `GROUPS_PER_INSTANCE` groups, `group_jid(instance_id, n)` for n = 1..3,
  subject "Sim group n", n + 2 participants;
- a number is on WhatsApp unless its last digit is 0 (`on_whatsapp`);
- an `incoming` fault delivers one message to the live session: `from` (phone or JID, default a
  random number), `text`, `media` ({url} or {mime, size, data?, caption?, filename?}: without
  `data` the sim makes `size` bytes), `group` (a group JID: the message is from `from` in that
  group), `wa_id` (default a new one; give the same twice to model a redelivery).
"""

from __future__ import annotations

import hashlib
import random
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from waz_actors import addressing
from waz_actors.drivers.base import (
    CheckContacts,
    DriverRequest,
    FetchMedia,
    IncomingMessage,
    ListGroups,
    RequestDone,
)

GROUPS_PER_INSTANCE = 3
MEDIA_KEPT = 1000  # media bytes of the latest incoming messages, for FetchMedia
MEDIA_MAX = 16 * 1024 * 1024
INCOMING_PARAMS = ("from", "text", "media", "group", "wa_id")
_MEDIA_KEYS = {"url", "mime", "size", "data", "caption", "filename"}


def group_jid(instance_id: str, n: int) -> str:
    digest = int(hashlib.sha256(f"{instance_id}/{n}".encode()).hexdigest()[:12], 16)
    return f"120363{digest % 10**12:012d}@g.us"


def groups_of(instance_id: str) -> list[dict[str, Any]]:
    return [
        {"id": group_jid(instance_id, n), "subject": f"Sim group {n}", "participants": n + 2}
        for n in range(1, GROUPS_PER_INSTANCE + 1)
    ]


def on_whatsapp(number: str) -> bool:
    return not number.endswith("0")


def user_jid(phone_or_jid: str) -> str:
    return phone_or_jid if "@" in phone_or_jid else f"{phone_or_jid.lstrip('+')}@s.whatsapp.net"


def validate_incoming(params: Mapping[str, Any]) -> dict[str, Any]:
    """Check an `incoming` fault's parameters; ValueError names the bad one."""
    out = dict(params)
    # from the command line, `from=5511...` reads as a JSON number and `text=42` too
    for key in ("from", "text"):
        if isinstance(out.get(key), int | float) and not isinstance(out.get(key), bool):
            out[key] = str(out[key])
    sender = out.get("from")
    if sender is not None:
        if not isinstance(sender, str):
            raise ValueError("incoming: from must be a phone number or JID")
        try:
            out["from"] = addressing.check_recipient(sender)
        except ValueError as e:
            raise ValueError(f"incoming: from {e}") from None
        if addressing.is_group_jid(out["from"]):
            raise ValueError("incoming: from must be a person; put the group in `group`")
    group = out.get("group")
    if group is not None and not (isinstance(group, str) and addressing.is_group_jid(group)):
        raise ValueError("incoming: group must be a group JID (...@g.us)")
    if "text" in out and not isinstance(out["text"], str):
        raise ValueError("incoming: text must be a string")
    if "wa_id" in out and not (isinstance(out["wa_id"], str) and out["wa_id"]):
        raise ValueError("incoming: wa_id must be a non-empty string")
    media = out.get("media")
    if media is not None:
        if not isinstance(media, Mapping) or not media.keys() <= _MEDIA_KEYS:
            raise ValueError(f"incoming: media must be a map of {', '.join(sorted(_MEDIA_KEYS))}")
        if "url" not in media and "data" not in media and "size" not in media:
            raise ValueError("incoming: media needs url, data or size")
        size = media.get("size")
        if size is not None and (not isinstance(size, int) or not 0 <= size <= MEDIA_MAX):
            raise ValueError(f"incoming: media size must be 0..{MEDIA_MAX}")
        data = media.get("data")
        if data is not None and not isinstance(data, bytes | str):
            raise ValueError("incoming: media data must be bytes or a string")
    return out


def make_incoming(
    params: Mapping[str, Any], now_wall: float, rand: random.Random
) -> IncomingMessage:
    """The message an `incoming` fault delivers (parameters already validated)."""
    sender = user_jid(params.get("from") or f"55119{rand.randrange(10**8):08d}")
    wa_id = params.get("wa_id") or "3EB0" + "".join(rand.choices("0123456789ABCDEF", k=16))
    text = params.get("text")
    media_in = params.get("media")
    media: dict[str, Any] | None = None
    data: bytes | None = None
    if media_in is not None:
        media = {k: v for k, v in media_in.items() if k != "data"}
        raw = media_in.get("data")
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else bytes(raw)
        elif "url" not in media_in:
            data = bytes(rand.getrandbits(8) for _ in range(int(media_in.get("size", 0))))
        if data is not None:
            media["size"] = len(data)
        media.setdefault("mime", "application/octet-stream")
    elif text is None:
        text = f"hello {rand.randrange(1000)}"
    return IncomingMessage(
        wa_id=wa_id,
        chat=params.get("group") or sender,
        sender=sender,
        time=now_wall,
        text=text,
        media=media,
        media_data=data,
    )


class MediaShelf:
    """The bytes of recent incoming media, by WhatsApp id (the sim's "servers")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def put(self, wa_id: str, data: bytes) -> None:
        with self._lock:
            self._items[wa_id] = data
            while len(self._items) > MEDIA_KEPT:
                self._items.popitem(last=False)

    def get(self, wa_id: str) -> bytes | None:
        with self._lock:
            return self._items.get(wa_id)


def answer(instance_id: str, request: DriverRequest, shelf: MediaShelf) -> RequestDone | None:
    """The answer to a request at once; None when it needs a fetch (`fetch_url`)."""
    rid = request.request_id
    if isinstance(request, ListGroups):
        return RequestDone(rid, groups_of(instance_id))
    if isinstance(request, CheckContacts):
        return RequestDone(
            rid,
            [
                {
                    "number": n,
                    "on_whatsapp": on_whatsapp(n),
                    "jid": f"{n}@s.whatsapp.net" if on_whatsapp(n) else None,
                }
                for n in request.numbers
            ],
        )
    if isinstance(request, FetchMedia):
        data = shelf.get(request.wa_id)
        if data is not None:
            return RequestDone(rid, data)
        if request.media.get("url"):
            return None
        return RequestDone(rid, error="media no longer available")
    return RequestDone(rid, error=f"unknown request {type(request).__name__}")


def fetch_url(request: FetchMedia, timeout: float = 30.0) -> RequestDone:
    """Download a URL-backed sim media (blocking: run it on a thread of its own)."""
    try:
        with urllib.request.urlopen(str(request.media["url"]), timeout=timeout) as resp:
            data = resp.read(MEDIA_MAX + 1)
    except Exception as e:
        return RequestDone(request.request_id, error=f"media download failed: {e}")
    if len(data) > MEDIA_MAX:
        return RequestDone(request.request_id, error="media larger than the sim allows")
    return RequestDone(request.request_id, data)


__all__ = [
    "GROUPS_PER_INSTANCE",
    "INCOMING_PARAMS",
    "MediaShelf",
    "answer",
    "fetch_url",
    "group_jid",
    "groups_of",
    "make_incoming",
    "on_whatsapp",
    "validate_incoming",
]
