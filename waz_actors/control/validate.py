"""Argument converters: each takes the raw msgpack value and returns it checked, or raises ArgError.

They run before any handler touches the fleet or the store (invariant 7: bad input changes
nothing). Converters are plain functions so the registry can name the field in the error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from waz_actors import addressing
from waz_actors.config import KNOWN_DRIVERS
from waz_actors.control.protocol import ArgError
from waz_actors.errors import TooLarge
from waz_actors.types import InstanceState, MessageStatus

MAX_URL_LEN = 2048
MAX_SHORT_TEXT = 256
MAX_SETTINGS_LEN = 64
MAX_LIST_IDS = 1000
MAX_TTL = 30 * 86400.0
MAX_PARAMS_LEN = 32


def string(value: Any, *, max_len: int = MAX_SHORT_TEXT, what: str = "a string") -> str:
    if not isinstance(value, str):
        raise ArgError(f"expected {what}, got {type(value).__name__}")
    if len(value) > max_len:
        raise ArgError(f"longer than {max_len} characters")
    return value


def ident(value: Any) -> str:
    """Instance, message, tenant and token ids (addressing.ID_RULE)."""
    if not isinstance(value, str):
        raise ArgError(f"expected a string id, got {type(value).__name__}")
    try:
        return addressing.check_id(value)
    except ValueError as e:
        raise ArgError(str(e)) from None


def recipient(value: Any) -> str:
    """A phone number (8..15 digits, optional +) or a JID (user or group)."""
    value = string(value, max_len=64, what="a phone number or JID")
    try:
        return addressing.check_recipient(value)
    except ValueError as e:
        raise ArgError(str(e)) from None


def text_of(max_len: int) -> Callable[[Any], str]:
    def text(value: Any) -> str:
        if not isinstance(value, str):
            raise ArgError(f"expected a string, got {type(value).__name__}")
        if not value:
            raise ArgError("must not be empty")
        if len(value) > max_len:
            raise ArgError(f"longer than {max_len} characters", TooLarge)
        return value

    return text


def url(value: Any) -> str:
    text = string(value, max_len=MAX_URL_LEN, what="a URL")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ArgError("must be an http:// or https:// URL")
    return text


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ArgError(f"expected true or false, got {type(value).__name__}")
    return value


_MEDIA_FIELDS: dict[str, Callable[[Any], str | bool]] = {
    "url": url,
    "caption": lambda v: string(v, max_len=4096),
    "filename": lambda v: string(v, max_len=255),
    "mime": lambda v: string(v, max_len=127),
    "ptt": flag,  # audio as a voice note
}


def media(value: Any) -> dict[str, str | bool]:
    if not isinstance(value, dict):
        raise ArgError(
            f"expected a map with url, caption?, filename?, mime?, ptt?, got {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in _MEDIA_FIELDS)
    if unknown:
        raise ArgError(f"unknown field {unknown[0]!r}")
    if "url" not in value:
        raise ArgError("url: required")
    out: dict[str, str | bool] = {}
    for key, conv in _MEDIA_FIELDS.items():
        if value.get(key) is not None:
            try:
                out[key] = conv(value[key])
            except ArgError as e:
                raise ArgError(f"{key}: {e}") from None
    return out


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ArgError("must be finite")
    return float(value)


def ttl(value: Any) -> float:
    seconds = number(value)
    if not 0 < seconds <= MAX_TTL:
        raise ArgError(f"must be greater than 0 and at most {MAX_TTL:g} seconds")
    return seconds


def limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgError(f"expected an integer, got {type(value).__name__}")
    if not 1 <= value <= 1000:
        raise ArgError("must be between 1 and 1000")
    return value


MAX_QUOTA = 1_000_000


def quota(value: Any) -> int:
    """An instance quota: 0 (no instances at all) up to MAX_QUOTA."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgError(f"expected an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_QUOTA:
        raise ArgError(f"must be between 0 and {MAX_QUOTA}")
    return value


def driver(value: Any) -> str:
    text = string(value, max_len=32, what="a driver name")
    if text not in KNOWN_DRIVERS:
        raise ArgError(f"unknown driver {text!r}; known: {', '.join(KNOWN_DRIVERS)}")
    return text


def instance_state(value: Any) -> str:
    value = string(value, max_len=32, what="an instance state")
    try:
        return str(InstanceState(value))
    except ValueError:
        raise ArgError(
            f"unknown state; one of {', '.join(s.value for s in InstanceState)}"
        ) from None


def message_status(value: Any) -> str:
    value = string(value, max_len=32, what="a message status")
    try:
        return str(MessageStatus(value))
    except ValueError:
        raise ArgError(
            f"unknown status; one of {', '.join(s.value for s in MessageStatus)}"
        ) from None


def plain_map(max_len: int) -> Callable[[Any], dict[str, Any]]:
    def convert(value: Any) -> dict[str, Any]:
        if value == []:
            return {}  # an empty PHP array
        if not isinstance(value, dict):
            raise ArgError(f"expected a map, got {type(value).__name__}")
        if len(value) > max_len:
            raise ArgError(f"more than {max_len} entries")
        for key in value:
            if not isinstance(key, str) or not 1 <= len(key) <= 64:
                raise ArgError("keys must be strings of 1 to 64 characters")
        return dict(value)

    return convert


settings = plain_map(MAX_SETTINGS_LEN)
params = plain_map(MAX_PARAMS_LEN)


def id_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ArgError(f"expected a list of ids, got {type(value).__name__}")
    if len(value) > MAX_LIST_IDS:
        raise ArgError(f"more than {MAX_LIST_IDS} ids", TooLarge)
    out = []
    for i, item in enumerate(value):
        try:
            out.append(ident(item))
        except ArgError as e:
            raise ArgError(f"[{i}]: {e}") from None
    return out


def label(value: Any) -> str:
    return string(value, max_len=128)


def phone(value: Any) -> str:
    value = string(value, max_len=16, what="a phone number")
    try:
        return addressing.check_phone(value)
    except ValueError as e:
        raise ArgError(str(e)) from None


def fault_kind(value: Any) -> str:
    text = string(value, max_len=32, what="a fault kind")
    if not re.fullmatch(r"[a-z_]{1,32}", text):
        raise ArgError("must be a lower-case fault name like conflict or send_fail")
    return text


def token_ref(value: Any) -> str:
    """A token id: the hex sha256 of the token or a prefix of it (at least 8 characters)."""
    text = string(value, max_len=64, what="a token id")
    if not re.fullmatch(r"[0-9a-f]{8,64}", text):
        raise ArgError("must be 8 to 64 hex characters (a prefix of the token hash)")
    return text
