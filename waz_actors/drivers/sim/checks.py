"""Argument checks shared by the network, the remote client and the driver.

They raise ValueError (TypeError for a wrong message type), so a caller's bad input changes
nothing and the daemon sees the same error whichever network it talks to.
"""

from __future__ import annotations

from typing import Any

from waz_actors import addressing
from waz_actors.drivers.base import OutgoingMessage


def check_message(message: OutgoingMessage) -> None:
    if not isinstance(message, OutgoingMessage):
        raise TypeError(f"send() takes an OutgoingMessage, got {type(message).__name__}")
    if not isinstance(message.message_id, str) or not message.message_id:
        raise ValueError("message_id must be a non-empty string")


def check_phone(phone: str) -> str:
    """The project's one phone rule (`waz_actors.addressing`), with the value in the error."""
    if not isinstance(phone, str):
        raise ValueError(f"phone must be a string, got {phone!r}")
    try:
        return addressing.check_phone(phone)
    except ValueError as e:
        raise ValueError(f"phone {e}, got {phone!r}") from None


def check_instance_id(instance_id: str) -> None:
    if not isinstance(instance_id, str) or not instance_id:
        raise ValueError("instance_id must be a non-empty string")


def check_number(name: str, value: Any, *, minimum: float, strict: bool = False) -> None:
    """`value` comes from configuration or the wire, so it may be anything."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
