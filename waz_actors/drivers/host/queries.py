"""The driver host's answers to `query` requests, on a session's worker thread.

Each library call holds the host's library lock, never the whole request: a 500-number contact
check is 10 IsOnWhatsApp calls with a pause between them (WhatsApp rate-limits this lookup), and
other sessions' connects and sends go on in the pauses.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from waz_actors.drivers.base import RequestDone
from waz_actors.drivers.whatsmeow_inbound import (
    CONTACT_PAUSE,
    batches,
    contacts_answer,
    groups_answer,
    ref_bytes,
)

KINDS = ("groups", "contacts", "media")


def answer(
    client: Any, lock: threading.Lock, rid: str, kind: str, args: dict[str, Any]
) -> RequestDone:
    try:
        return RequestDone(rid, _run(client, lock, kind, args))
    except Exception as e:
        return RequestDone(rid, error=f"{kind}: {e or type(e).__name__}")


def _run(client: Any, lock: threading.Lock, kind: str, args: dict[str, Any]) -> Any:
    if kind == "groups":
        with lock:
            return groups_answer(client.get_joined_groups())
    if kind == "contacts":
        numbers = [str(n) for n in args.get("numbers") or ()]
        responses: list[Any] = []
        for i, batch in enumerate(batches(numbers)):
            if i:
                time.sleep(CONTACT_PAUSE)
            with lock:
                responses += list(client.is_on_whatsapp(*["+" + n for n in batch]))
        return contacts_answer(numbers, responses)
    if kind == "media":
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        message = Message.FromString(ref_bytes(dict(args.get("media") or {})))
        with lock:
            return bytes(client.download_any(message))
    raise ValueError(f"unknown request kind {kind!r}")


__all__ = ["KINDS", "answer"]
