"""Mapping of whatsmeow (neonize) events onto the driver events of docs/design.md, and their wire
form.

`map_event` runs inside a driver host, on neonize protobuf objects. It dispatches on the protobuf
type name, so this module never imports neonize and the daemon can use the wire helpers without
loading the 60 MiB library.

Durations on the wire are real seconds relative to the moment of mapping (a host knows nothing of
the daemon clock): `Banned.until` and `QrCode.expires_in` leave the host as "real seconds from
now", and `from_wire` turns them into daemon-clock values with the driver's clock and time scale.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverAlarm,
    DriverEvent,
    IncomingMessage,
    KeepAlive,
    LoggedOut,
    PairCode,
    Paired,
    QrCode,
    Receipt,
    RequestDone,
    SendResult,
)

# whatsmeow's ConnectFailureReason values are HTTP-like codes; neonize renumbers them 1..10 in
# its protobuf enum. We report the original codes so `instance.get` shows what operators know.
CONNECT_FAILURE_CODES: dict[str, int] = {
    "GENERIC": 400,
    "LOGGED_OUT": 401,
    "TEMP_BANNED": 402,
    "MAIN_DEVICE_GONE": 403,
    "UNKNOWN_LOGOUT": 406,
    "CLIENT_OUTDATED": 405,
    "BAD_USER_AGENT": 409,
    "INTERNAL_SERVER_ERROR": 500,
    "EXPERIMENTAL": 501,
    "SERVICE_UNAVAILABLE": 503,
}
_LOGOUT_REASONS = {"LOGGED_OUT", "MAIN_DEVICE_GONE", "UNKNOWN_LOGOUT"}
# Failures that reconnecting cannot fix: an operator must upgrade or intervene.
_ALARM_REASONS = {"CLIENT_OUTDATED", "BAD_USER_AGENT", "EXPERIMENTAL"}
RECEIPT_KINDS = {"DELIVERED": "delivered", "READ": "read", "PLAYED": "played"}
# whatsmeow shows the first QR code for 60 s and each following one for 20 s.
QR_FIRST_TTL = 60.0
QR_NEXT_TTL = 20.0

_EVENT_TYPES: dict[str, type[DriverEvent]] = {
    cls.__name__: cls
    for cls in (
        Banned,
        Conflict,
        Connected,
        Disconnected,
        DriverAlarm,
        KeepAlive,
        LoggedOut,
        PairCode,
        Paired,
        QrCode,
        Receipt,
        SendResult,
        IncomingMessage,
        RequestDone,
    )
}


class WireError(ValueError):
    """A driver event on the wire that cannot be decoded."""


def _enum_name(msg: Any, field: str) -> str:
    value = getattr(msg, field)
    enum = msg.DESCRIPTOR.fields_by_name[field].enum_type
    item = enum.values_by_number.get(int(value))
    return item.name if item is not None else str(int(value))


def jid_to_str(jid: Any) -> str:
    """`user@server` (device suffix dropped: the instance is the account, not the device)."""
    if jid is None or not getattr(jid, "User", ""):
        return ""
    return f"{jid.User}@{jid.Server}"


def map_event(ev: Any, *, jid: str = "") -> list[DriverEvent]:
    """Driver events for one neonize event object; `[]` for events the daemon does not need.

    `jid` is the session's own JID, known to the host only after `get_me()`; the host calls this
    again with it for `Connected`.
    """
    name = ev.DESCRIPTOR.name
    if name == "Connected":
        return [Connected(jid=jid)]
    if name == "Disconnected":
        # whatsmeow is already reconnecting on its own; the next Connected is counted again.
        return [
            Disconnected(code=None, reason="disconnected; whatsmeow reconnects", transient=True)
        ]
    if name == "StreamReplaced":
        return [Conflict(reason="replaced")]
    if name == "LoggedOut":
        reason = _enum_name(ev, "Reason").lower()
        return [LoggedOut(reason=reason + (" on connect" if ev.OnConnect else ""))]
    if name == "TemporaryBan":
        return [Banned(until=float(ev.Expire), reason=_enum_name(ev, "Code").lower())]
    if name == "ClientOutdated":
        return [
            DriverAlarm(kind="client_outdated", message="WhatsApp rejects this whatsmeow version"),
            Disconnected(code=405, reason="client outdated", transient=False),
        ]
    if name == "ConnectFailure":
        return _connect_failure(ev)
    if name == "StreamError":
        code = ev.Code
        if code == "440":
            return [Conflict(reason="stream error 440")]
        return [
            Disconnected(
                code=int(code) if code.isdigit() else None,
                reason=f"stream error {code}",
                transient=True,
            )
        ]
    if name == "PairStatus":
        if _enum_name(ev, "Status") == "SUCCESS":
            return [Paired(jid=jid_to_str(ev.ID))]
        return [DriverAlarm(kind="pair_failed", message=ev.Error or "pairing failed")]
    if name == "Message":
        from waz_actors.drivers.whatsmeow_inbound import map_message

        incoming = map_message(ev)
        return [incoming] if incoming is not None else []
    # HistorySync is not mapped on purpose: past chats never become inbox rows
    # (whatsmeow_inbound.py).
    if name == "Receipt":
        kind = RECEIPT_KINDS.get(_enum_name(ev, "Type"))
        if kind is None:
            return []
        # WhatsApp's ids only: the driver (or, after a restart, the store) finds ours.
        return [Receipt(message_id="", kind=kind, wa_id=mid) for mid in ev.MessageIDs]
    if name == "KeepAliveTimeout":
        return [KeepAlive(ok=False, errors=int(ev.ErrorCount))]
    if name == "KeepAliveRestored":
        return [KeepAlive(ok=True)]
    return []


def _connect_failure(ev: Any) -> list[DriverEvent]:
    reason = _enum_name(ev, "Reason")
    code = CONNECT_FAILURE_CODES.get(reason)
    text = f"connect failure {reason.lower()}" + (f": {ev.Message}" if ev.Message else "")
    if reason in _LOGOUT_REASONS:
        return [LoggedOut(reason=reason.lower())]
    if reason == "TEMP_BANNED":
        # whatsmeow sends TemporaryBan with the expiry as well; this one only ends the attempt.
        return [Disconnected(code=code, reason=text, transient=True)]
    if reason in _ALARM_REASONS:
        return [
            DriverAlarm(kind=reason.lower(), message=text, details={"code": code}),
            Disconnected(code=code, reason=text, transient=False),
        ]
    return [Disconnected(code=code, reason=text, transient=True)]


def map_qr(code: bytes | str, first: bool) -> QrCode:
    text = code.decode() if isinstance(code, bytes) else code
    return QrCode(code=text, expires_in=QR_FIRST_TTL if first else QR_NEXT_TTL)


# --- wire form (msgpack-friendly dicts) -------------------------------------------------------


def to_wire(ev: DriverEvent) -> dict[str, Any]:
    body = dataclasses.asdict(ev)
    body["type"] = type(ev).__name__
    return body


def from_wire(body: Mapping[str, Any], *, now: float = 0.0, time_scale: float = 1.0) -> DriverEvent:
    """Decode a host event; relative real-second durations become daemon-clock values."""
    if not isinstance(body, Mapping):
        raise WireError(f"event must be a map, got {type(body).__name__}")
    kind = body.get("type")
    cls = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise WireError(f"unknown event type {kind!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in body.items() if k in fields}
    try:
        ev = cls(**kwargs)
    except TypeError as e:
        raise WireError(f"bad {kind} event: {e}") from None
    if isinstance(ev, Banned):
        return dataclasses.replace(ev, until=now + float(ev.until) / time_scale)
    if isinstance(ev, QrCode):
        return dataclasses.replace(ev, expires_in=float(ev.expires_in) / time_scale)
    return ev


__all__ = [
    "CONNECT_FAILURE_CODES",
    "WireError",
    "from_wire",
    "jid_to_str",
    "map_event",
    "map_qr",
    "to_wire",
]
