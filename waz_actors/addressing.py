"""The one place for the rules on names and addresses: ids, phone numbers, JIDs, message content.

The control protocol, the CLI and the drivers all check with these, so a value one of them
accepts is never refused by another. Each check raises ValueError with a message for a person;
the callers wrap it in their own error type.
"""

from __future__ import annotations

import re
from typing import Any

# Ids become file names (session stores, key files): no leading dot, so never "." or "..".
_ID_RE = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,63}")
_PHONE_RE = re.compile(r"\+?[0-9]{8,15}")
_JID_RE = re.compile(r"[0-9]{5,20}(-[0-9]{1,20})?@(s\.whatsapp\.net|g\.us)")

ID_RULE = "1 to 64 characters of A-Z a-z 0-9 _ . : -, not starting with a dot"
PHONE_RULE = "a phone number of 8 to 15 digits, country code first"


def check_id(value: str) -> str:
    """Instance, message, tenant and token ids."""
    if not _ID_RE.fullmatch(value):
        raise ValueError(f"must be {ID_RULE}")
    return value


def check_phone(value: str) -> str:
    """A phone number in international format; answers the digits without the '+'."""
    if not (value.isascii() and _PHONE_RE.fullmatch(value)):
        raise ValueError(f"must be {PHONE_RULE}")
    return value.lstrip("+")


def is_jid(value: str) -> bool:
    return bool(_JID_RE.fullmatch(value))


def is_group_jid(value: str) -> bool:
    return is_jid(value) and value.endswith("@g.us")


def check_recipient(value: str) -> str:
    """A phone number (digits answered without '+') or a user or group JID (answered as is)."""
    if value.isascii() and _PHONE_RE.fullmatch(value):
        return value.lstrip("+")
    if is_jid(value):
        return value
    raise ValueError(
        "must be a phone number of 8 to 15 digits or a JID like 5511999999999@s.whatsapp.net"
    )


def check_content(text: Any, media: Any) -> None:
    """A message carries text, media or both."""
    if text is None and media is None:
        raise ValueError("text or media is required")
