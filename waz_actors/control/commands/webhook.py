"""webhook.* commands: a tenant's subscriptions to events, delivered signed over HTTP.

A tenant sees and changes only its own webhooks (another tenant's is not_found); an admin sees
all and may create daemon-wide ones (no `tenant`: every tenant's events). The secret is shown
once, by webhook.create. Deliveries are written by the store (store/webhooks.py) and sent by the
delivery worker (actors/webhooks.py); docs/webhooks.md is the user's page.
"""

from __future__ import annotations

import time
from typing import Any

from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import ArgError, command, optional
from waz_actors.errors import BadRequest, NotFound
from waz_actors.net.webhook_http import TargetRefused, check_target
from waz_actors.policy import webhooks as rules
from waz_actors.store.webhooks import DELIVERY_STATUSES, WebhookRecord

ID = {"webhook_id": v.ident}
SECRET_MIN, SECRET_MAX = 16, 256


def events(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ArgError(f"expected a list of event names, got {type(value).__name__}")
    try:
        return list(rules.check_patterns(value))
    except ValueError as e:
        raise ArgError(str(e)) from None


def secret(value: Any) -> str:
    text = v.string(value, max_len=SECRET_MAX, what="a secret")
    if len(text) < SECRET_MIN:
        raise ArgError(f"shorter than {SECRET_MIN} characters")
    return text


def delivery_status(value: Any) -> str:
    if value not in DELIVERY_STATUSES:
        raise ArgError(f"expected one of {', '.join(DELIVERY_STATUSES)}, got {value!r}")
    return str(value)


def seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgError("expected a delivery seq (a non-negative integer)")
    return value


def hook(ctx: Context, webhook_id: str) -> WebhookRecord:
    """The caller's webhook; not_found for another tenant's (and for a daemon-wide one, which
    only an admin sees)."""
    rec = ctx.store.webhooks.get_webhook(webhook_id)
    if rec is None or not (ctx.identity.admin or rec.tenant == ctx.identity.tenant):
        raise NotFound(f"no webhook {webhook_id!r}", {"field": "webhook_id"})
    return rec


@command(
    "webhook.create",
    blocking=True,
    args={
        "url": v.url,
        "events": optional(events),
        "secret": optional(secret),
        "tenant": optional(v.ident),
    },
)
def create(
    ctx: Context,
    url: str,
    events: list[str] | None = None,
    secret: str | None = None,
    tenant: str | None = None,
) -> dict[str, Any]:
    """`tenant`: an admin's choice (absent: daemon-wide); a tenant token gets its own."""
    if not ctx.identity.admin:
        if tenant is not None and tenant != ctx.identity.tenant:
            raise BadRequest(
                "tenant: only an admin token may choose the tenant", {"field": "tenant"}
            )
        tenant = ctx.identity.tenant
    try:
        check_target(url, allow_private=ctx.config.webhooks.allow_private_targets)
    except (TargetRefused, ValueError) as e:
        raise BadRequest(f"url: {e}", {"field": "url"}) from None
    rec = WebhookRecord(
        webhook_id=rules.new_webhook_id(),
        tenant=tenant,
        url=url,
        events=tuple(events or ("*",)),
        secret=secret or rules.new_secret(),
        enabled=True,
        disabled_reason=None,
        created_at=time.time(),
    )
    ctx.store.webhooks.create_webhook(rec).result(ctx.timeout)
    return {**rec.public(), "secret": rec.secret}


@command("webhook.list", readonly=True)
def list_(ctx: Context) -> dict[str, Any]:
    hooks = ctx.store.webhooks.list_webhooks(ctx.tenant_filter)
    return {"webhooks": [h.public() for h in hooks]}


@command("webhook.get", readonly=True, args=ID)
def get(ctx: Context, webhook_id: str) -> dict[str, Any]:
    rec = hook(ctx, webhook_id)
    counts = ctx.store.webhooks.delivery_counts(webhook_id)
    return {**rec.public(), "deliveries": counts}


@command("webhook.delete", blocking=True, args=ID)
def delete(ctx: Context, webhook_id: str) -> dict[str, Any]:
    hook(ctx, webhook_id)
    ctx.store.webhooks.delete_webhook(webhook_id).result(ctx.timeout)
    return {"webhook_id": webhook_id, "deleted": True}


@command(
    "webhook.deliveries",
    readonly=True,
    args={
        **ID,
        "status": optional(delivery_status),
        "after": optional(seq),
        "limit": optional(v.limit),
    },
)
def deliveries(
    ctx: Context,
    webhook_id: str,
    status: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Oldest first; `next` is the `after` of the next page (None on the last one)."""
    hook(ctx, webhook_id)
    items = ctx.store.webhooks.list_deliveries(webhook_id, status=status, after=after, limit=limit)
    nxt = items[-1]["seq"] if len(items) == limit else None
    return {"webhook_id": webhook_id, "deliveries": items, "next": nxt}


@command("webhook.redeliver", blocking=True, args={**ID, "event_ids": optional(v.id_list)})
def redeliver(ctx: Context, webhook_id: str, event_ids: list[str] | None = None) -> dict[str, Any]:
    """The listed events again (any status), or every dead and failed delivery; the webhook is
    enabled again (after a 410)."""
    hook(ctx, webhook_id)
    n = ctx.store.webhooks.redeliver(webhook_id, event_ids).result(ctx.timeout)
    return {"webhook_id": webhook_id, "redelivering": n}


@command("webhook.test", blocking=True, args=ID)
def test(ctx: Context, webhook_id: str) -> dict[str, Any]:
    """A `ping` event to this webhook alone; its delivery shows in webhook.deliveries."""
    hook(ctx, webhook_id)
    event_id = ctx.store.webhooks.ping(webhook_id).result(ctx.timeout)
    return {"webhook_id": webhook_id, "event_id": event_id, "event": rules.PING}
