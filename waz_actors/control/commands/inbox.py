"""inbox.list, message.download, group.list, contact.check: what an instance receives and knows.

inbox.list reads the store (works whatever the instance's state). The others ask the driver
through the instance actor (`Fleet.query`): they need the instance online (`invalid_state`
otherwise, or when the session ends before the answer) and answer `busy` when the driver takes
longer than the timeout. message.download answers from the store, without the driver, when the
media bytes were kept (`[inbox] keep_media`).
"""

from __future__ import annotations

from typing import Any

from waz_actors import addressing
from waz_actors.actors.instance.inbound import inbox_event
from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import ArgError, command, optional
from waz_actors.drivers.base import CheckContacts, FetchMedia, ListGroups
from waz_actors.errors import NotFound, TooLarge

ID = {"instance_id": v.ident}
CONTACTS_MAX = 500  # numbers per contact.check
CONTACT_BATCH = 50  # numbers per IsOnWhatsApp call of the whatsmeow host
BATCH_SECONDS = 2.0  # extra wait per batch: the host paces its calls


def numbers(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ArgError("expected a non-empty list of phone numbers")
    if len(value) > CONTACTS_MAX:
        raise ArgError(f"more than {CONTACTS_MAX} numbers", TooLarge)
    out: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ArgError(f"[{i}]: expected a string")
        try:
            digits = addressing.check_phone(item)
        except ValueError as e:
            raise ArgError(f"[{i}]: {e}") from None
        if digits not in out:
            out.append(digits)
    return out


@command(
    "inbox.list",
    readonly=True,
    args={**ID, "after": optional(v.ident), "limit": optional(v.limit)},
)
def list_(ctx: Context, instance_id: str, after: str | None = None, limit: int = 100) -> Any:
    """Received messages, oldest first (newest last); `next` is the cursor of the next page."""
    ctx.instance(instance_id)
    if after is not None and not ctx.store.inbox_owned(instance_id, after):
        raise NotFound(f"no inbox message {after!r}", {"field": "after"})
    recs = ctx.store.list_inbox(instance_id, after=after, limit=limit)
    items = [inbox_event(r) for r in recs]
    last = items[-1]["inbox_id"] if items else after
    return {"messages": items, "next": last if len(items) == limit else None, "last": last}


@command(
    "message.download",
    blocking=True,
    args={**ID, "inbox_id": v.ident},
)
def download(ctx: Context, instance_id: str, inbox_id: str) -> dict[str, Any]:
    ctx.instance(instance_id)
    rec = ctx.store.get_inbox(inbox_id)
    if rec is None or not ctx.store.inbox_owned(instance_id, inbox_id):
        raise NotFound(f"no inbox message {inbox_id!r}", {"field": "inbox_id"})
    if not rec.media:
        raise NotFound(f"inbox message {inbox_id!r} has no media", {"field": "inbox_id"})
    data = ctx.store.inbox_media(inbox_id) if rec.kept else None
    source = "store"
    if data is None:
        source = "driver"
        data = ctx.fleet.query(instance_id, FetchMedia("", rec.wa_id, rec.media), ctx.timeout)
    media = rec.media
    return {
        "inbox_id": inbox_id,
        "mime": media.get("mime"),
        "filename": media.get("filename"),
        "size": len(data),
        "source": source,
        "data": bytes(data),
    }


@command("group.list", blocking=True, args=ID)
def groups(ctx: Context, instance_id: str) -> dict[str, Any]:
    ctx.instance(instance_id)
    found = ctx.fleet.query(instance_id, ListGroups(""), ctx.timeout)
    return {"instance_id": instance_id, "groups": list(found)}


@command("contact.check", blocking=True, args={**ID, "numbers": numbers})
def contacts(ctx: Context, instance_id: str, numbers: list[str]) -> dict[str, Any]:
    ctx.instance(instance_id)
    batches = -(-len(numbers) // CONTACT_BATCH)
    timeout = ctx.timeout + batches * BATCH_SECONDS
    found = ctx.fleet.query(instance_id, CheckContacts("", tuple(numbers)), timeout)
    return {"instance_id": instance_id, "contacts": list(found)}
