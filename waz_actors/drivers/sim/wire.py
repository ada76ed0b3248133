"""The sim server's wire format: msgpack maps, driver events and messages as plain fields.

Every frame is one msgpack map with an `op` (see `server.py` for the list). An event travels as
`{"type": <class name>, fields...}`. `Banned.until` is daemon-clock time and the two processes
have different clocks, so a ban travels as the remaining time and the receiver adds its own now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import msgpack

from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    DriverEvent,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    Receipt,
    SendResult,
)

EVENT_TYPES: dict[str, type[DriverEvent]] = {
    cls.__name__: cls
    for cls in (
        Connected,
        Disconnected,
        Conflict,
        LoggedOut,
        QrCode,
        PairCode,
        Paired,
        Banned,
        SendResult,
        Receipt,
        DriverAlarm,
    )
}


def encode_event(event: DriverEvent, now: float) -> dict[str, Any]:
    body = asdict(event)
    if isinstance(event, Banned):
        body["remaining"] = max(0.0, event.until - now)
        del body["until"]
    if isinstance(event, DriverAlarm):
        body["details"] = dict(event.details)
    return {"type": type(event).__name__, **body}


def decode_event(body: Mapping[str, Any], now: float) -> DriverEvent:
    fields = dict(body)
    cls = EVENT_TYPES.get(fields.pop("type", None))
    if cls is None:
        raise ValueError(f"unknown event type in {body!r}")
    if cls is Banned:
        fields["until"] = now + float(fields.pop("remaining"))
    return cls(**fields)


def encode_message(message: OutgoingMessage) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "to": message.to,
        "text": message.text,
        "media": dict(message.media) if message.media is not None else None,
    }


def decode_message(body: Mapping[str, Any]) -> OutgoingMessage:
    return OutgoingMessage(body["message_id"], body["to"], body.get("text"), body.get("media"))


def pack(body: Mapping[str, Any]) -> bytes:
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def unpack(payload: bytes) -> Any:
    """A decoded frame: any msgpack value until the caller checks it is a map with an op."""
    return msgpack.unpackb(payload, raw=False)
