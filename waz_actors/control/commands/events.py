"""events.subscribe / renew / unsubscribe: a tenant-scoped event stream on the control socket.

The subscription belongs to the peer (DEALER connection) that asked: the server pushes events to
it (control/streams.py). A token sees its own tenant's instances only (admin: all).
"""

from __future__ import annotations

import re
from typing import Any

from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import ArgError, command, optional
from waz_actors.control.streams import Streams, current_origin
from waz_actors.errors import BadRequest, InvalidState

MAX_TOPICS = 64
_TOPIC = re.compile(r"[A-Za-z0-9_.:-]{0,128}")


def topics(value: Any) -> tuple[str, ...]:
    """Topic prefixes ("" = everything): a list of up to 64 short strings."""
    if not isinstance(value, list):
        raise ArgError(f"expected a list of topic prefixes, got {type(value).__name__}")
    if len(value) > MAX_TOPICS:
        raise ArgError(f"more than {MAX_TOPICS} topic prefixes")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _TOPIC.fullmatch(item):
            raise ArgError(f"[{i}]: a prefix is up to 128 of A-Z a-z 0-9 _ . : -")
    return tuple(value) or ("",)


def subscription_id(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"s[0-9]{1,12}-[0-9a-f]{12}", value):
        raise ArgError("not a subscription id (as events.subscribe answered it)")
    return value


SID = {"subscription_id": subscription_id}


def _streams(ctx: Context) -> Streams:
    if ctx.streams is None:
        raise InvalidState("event streams are not available on this server")
    return ctx.streams


@command("events.subscribe", args={"topics": optional(topics)})
def subscribe(ctx: Context, topics: tuple[str, ...] = ("",)) -> dict[str, Any]:
    origin = current_origin.get()
    if origin is None:
        raise BadRequest("events.subscribe needs a connection to push to", {"field": "cmd"})
    return dict(_streams(ctx).subscribe(ctx.identity, topics, origin))


@command("events.renew", args=SID)
def renew(ctx: Context, subscription_id: str) -> dict[str, Any]:
    return dict(_streams(ctx).renew(ctx.identity, subscription_id))


@command("events.unsubscribe", args=SID)
def unsubscribe(ctx: Context, subscription_id: str) -> dict[str, Any]:
    return dict(_streams(ctx).unsubscribe(ctx.identity, subscription_id))
