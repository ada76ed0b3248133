"""Argument checks: a bad argument raises BadRequest at once, before anything is queued.

Callers on the other side of the control socket send whatever msgpack gives them, so the checks
look at the values' real types, not at the annotations.
"""

from __future__ import annotations

import json
from typing import TypeGuard

from waz_actors.errors import BadRequest
from waz_actors.types import PENDING_STATUSES, InstanceState, MessageStatus

DESIRED = ("running", "stopped")
PENDING = tuple(sorted(str(s) for s in PENDING_STATUSES))  # ("queued", "sending")
STATUSES = tuple(str(s) for s in MessageStatus)
INSTANCE_ID_MAX = 64


def to_json(value: object, field: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"{field}: not JSON-serialisable: {e}", {"field": field}) from None


def need_str(value: object, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field}: expected a non-empty string, got {value!r}", {"field": field})


def need_number(value: object, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{field}: expected a number, got {value!r}", {"field": field})


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (True is an int to Python, not to a caller)."""
    return isinstance(value, int) and not isinstance(value, bool)


def need_non_negative(value: object, field: str) -> None:
    if not is_int(value) or value < 0:
        raise BadRequest(
            f"{field}: expected a non-negative integer, got {value!r}", {"field": field}
        )


def need_positive(value: object, field: str) -> None:
    if not is_int(value) or value < 1:
        raise BadRequest(f"{field}: expected a positive integer, got {value!r}", {"field": field})


def need_map(value: object, field: str) -> None:
    if not isinstance(value, dict):
        raise BadRequest(f"{field}: expected a map", {"field": field})


def need_status(value: object, field: str = "status") -> str:
    if value not in STATUSES:
        raise BadRequest(
            f"{field}: unknown message status {value!r}; known: {', '.join(STATUSES)}",
            {"field": field},
        )
    return str(value)


def need_state(value: object) -> None:
    if value not in tuple(InstanceState):
        raise BadRequest(f"state: unknown instance state {value!r}", {"field": "state"})


def need_desired(value: object) -> None:
    if value not in DESIRED:
        raise BadRequest(
            f"desired: must be running or stopped, got {value!r}", {"field": "desired"}
        )


__all__ = [
    "DESIRED",
    "INSTANCE_ID_MAX",
    "PENDING",
    "STATUSES",
    "is_int",
    "need_desired",
    "need_map",
    "need_non_negative",
    "need_number",
    "need_positive",
    "need_state",
    "need_status",
    "need_str",
    "to_json",
]
