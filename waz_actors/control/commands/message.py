"""message.send / get / cancel.

message.send answers only after the group commit made the message durable (invariant 4): the
handler returns the commit future and the server replies when it resolves, so many concurrent
sends share one fsync and the socket loop never waits for the disk.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from waz_actors import addressing
from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import Later, command, optional
from waz_actors.errors import BadRequest, StorageFull, TooLarge, disk_full

_TEXT_MAX = 65536  # hard cap for the converter; the configured limit is checked in the handler
MID = {"message_id": v.ident}


def _text(value: Any) -> str:
    return v.text_of(_TEXT_MAX * 16)(value)


@command(
    "message.send",
    args={
        "instance_id": v.ident,
        "to": v.recipient,
        "text": optional(_text),
        "media": optional(v.media),
        "idempotency_key": optional(v.ident),
        "ttl": optional(v.ttl),
    },
)
def send(
    ctx: Context,
    instance_id: str,
    to: str,
    text: str | None = None,
    media: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    ttl: float | None = None,
) -> Later:
    from waz_actors.actors.fleet import accept_message

    try:
        addressing.check_content(text, media)
    except ValueError as e:
        raise BadRequest(str(e), {"field": "text"}) from None
    if text is not None and len(text) > ctx.config.queue.max_text_length:
        raise TooLarge(
            f"text: longer than {ctx.config.queue.max_text_length} characters",
            {"field": "text", "max": ctx.config.queue.max_text_length},
        )
    ctx.require_accepting()
    snap = ctx.instance(instance_id)
    committed = accept_message(
        ctx.fleet,
        instance_id=instance_id,
        tenant=snap.tenant,
        to=to,
        text=text,
        media=media,
        idempotency_key=idempotency_key,
        ttl=ttl,
    )
    return Later(_full_disk_told(committed), _sent)


def _full_disk_told(committed: Future[Any]) -> Future[Any]:
    """The commit's outcome, with a full disk answered as `storage_full` (not `internal`): the
    client learns that nothing was queued and that resending later, with the same
    idempotency_key, is the remedy."""
    told: Future[Any] = Future()

    def done(f: Future[Any]) -> None:
        error = f.exception()
        if error is None:
            told.set_result(f.result())
        elif disk_full(error) and not isinstance(error, StorageFull):
            why = f"the daemon's disk is full; nothing was queued: {error}"
            told.set_exception(StorageFull(why))
        else:
            told.set_exception(error)

    committed.add_done_callback(done)
    return told


def _sent(result: tuple[Any, bool]) -> dict[str, Any]:
    rec, created = result
    return {"message_id": rec.message_id, "status": rec.status, "created": created}


def media_view(rec: Any) -> dict[str, Any] | None:
    """The media as asked for, with what was fetched and sent (mime, kind, size, sha256) once the
    driver fetched it: a client sees exactly what went out."""
    if rec.media is None:
        return None
    return {**rec.media, **(getattr(rec, "media_info", None) or {})}


def message_dict(rec: Any) -> dict[str, Any]:
    return {
        "message_id": rec.message_id,
        "instance_id": rec.instance_id,
        "to": rec.to,
        "text": rec.text,
        "media": media_view(rec),
        "status": rec.status,
        "attempts": rec.attempts,
        "last_error": rec.last_error,
        "wa_id": rec.wa_id,
        "idempotency_key": rec.idempotency_key,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "expires_at": rec.expires_at,
        "delivered_at": rec.delivered_at,
        "read_at": rec.read_at,
        "possible_duplicate": rec.possible_duplicate,
    }


@command("message.get", readonly=True, args=MID)
def get(ctx: Context, message_id: str) -> dict[str, Any]:
    rec = ctx.message(message_id)
    return {**message_dict(rec), "history": [_plain(h) for h in ctx.store.history(message_id)]}


@command("message.cancel", blocking=True, args=MID)
def cancel(ctx: Context, message_id: str) -> dict[str, Any]:
    ctx.require_accepting()
    rec = ctx.message(message_id)
    status = ctx.fleet.cancel(rec.instance_id, message_id, ctx.timeout)
    return {"message_id": message_id, "status": str(status)}


def _plain(item: Any) -> Any:
    """History rows may be dataclasses, tuples or dicts depending on the store; send maps."""
    import dataclasses

    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if hasattr(item, "_asdict"):
        return item._asdict()
    return item
