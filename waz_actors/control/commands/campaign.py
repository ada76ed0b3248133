"""campaign.*: bulk sends as durable objects (see docs/campaigns.md and campaign/feeder.py).

Every command is tenant-scoped: a campaign is its tenant's, may only name that tenant's
instances, and another tenant's campaign is `not_found`. Recipients live in the store; the
handlers only validate, render templates and write, then wake the campaign's actor.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from waz_actors import addressing
from waz_actors.campaign import template
from waz_actors.campaign.actor import Manager
from waz_actors.campaign.window import check_window
from waz_actors.control import validate as v
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import ArgError, command, optional
from waz_actors.errors import BadRequest, InvalidState, NotFound, TooLarge
from waz_actors.store.campaigns import CAMPAIGN_STATES, RECIPIENT_STATUSES, CampaignRecord

RECIPIENTS_MAX = 1000  # per call; any number of calls
VARS_MAX = 32
CID = {"campaign_id": v.ident}


def _recipients(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ArgError(f"expected a list of {{to, vars?}}, got {type(value).__name__}")
    if len(value) > RECIPIENTS_MAX:
        raise ArgError(f"more than {RECIPIENTS_MAX} recipients per call", TooLarge)
    out: list[dict[str, Any]] = []
    for i, row in enumerate(value):
        if not isinstance(row, dict) or "to" not in row:
            raise ArgError(f"[{i}]: expected a map with to and vars?")
        if set(row) - {"to", "vars"}:
            raise ArgError(f"[{i}]: unknown field {sorted(set(row) - {'to', 'vars'})[0]!r}")
        try:
            to = addressing.check_phone(v.string(row["to"], max_len=64))
            vars_ = v.plain_map(VARS_MAX)(row.get("vars") or {})
        except (ArgError, ValueError) as e:
            raise ArgError(f"[{i}]: {e}") from None
        out.append({"to": to, "vars": {k: str(x) for k, x in vars_.items()}})
    return out


def _window(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ArgError("expected a map {from, to, tz}")
    try:
        return check_window(value)
    except ValueError as e:
        raise ArgError(str(e)) from None


def _delay(value: Any) -> tuple[float, float]:
    if not isinstance(value, dict) or set(value) - {"min", "max"}:
        raise ArgError("expected a map {min, max} in seconds")
    lo, hi = v.number(value.get("min", 0)), v.number(value.get("max", value.get("min", 0)))
    if not 0 <= lo <= hi <= 86400:
        raise ArgError("need 0 <= min <= max <= 86400")
    return lo, hi


def _status(value: Any) -> str:
    if value not in RECIPIENT_STATUSES:
        raise ArgError(f"expected one of {', '.join(RECIPIENT_STATUSES)}")
    return str(value)


def manager(ctx: Context) -> Manager:
    if ctx.fleet.campaigns is None:
        raise InvalidState("this daemon runs no campaigns", {"field": "cmd"})
    return ctx.fleet.campaigns


def campaign_of(ctx: Context, campaign_id: str) -> CampaignRecord:
    camp = ctx.store.campaigns.get(campaign_id)
    if camp is None or not ctx.identity.owns(camp.tenant):
        raise NotFound(f"no campaign {campaign_id!r}", {"field": "campaign_id"})
    return camp


def render_rows(camp_id: str, text: str | None, rows: list[dict[str, Any]]) -> list[Any]:
    """(number, vars, rendered text) per row; a missing var is bad_request naming the row."""
    out = []
    for i, row in enumerate(rows):
        rendered = None
        if text is not None:
            try:
                rendered = template.render(text, row["vars"], template.seed_of(camp_id, row["to"]))
            except template.TemplateError as e:
                raise BadRequest(
                    f"recipients[{i}] ({row['to']}): {e}", {"field": "recipients", "row": i}
                ) from None
        out.append((row["to"], row["vars"], rendered))
    return out


def view(ctx: Context, camp: CampaignRecord, detail: bool = True) -> dict[str, Any]:
    counts = ctx.store.campaigns.counts(camp.campaign_id)
    out: dict[str, Any] = {
        "campaign_id": camp.campaign_id,
        "name": camp.name,
        "state": camp.state,
        "reason": camp.reason,
        "instance_ids": list(camp.instance_ids),
        "counts": counts,
        "duplicates": camp.duplicates,
        "created_at": camp.created_at,
        "start_at": camp.start_at,
    }
    if detail:
        out.update(
            text=camp.text,
            media=camp.media,
            window=camp.window,
            delay={"min": camp.delay_min, "max": camp.delay_max},
            check_numbers=camp.check_numbers,
            per_instance=ctx.store.campaigns.per_instance(camp.campaign_id),
            eta=_eta(ctx, camp, counts),
        )
    return out


def _eta(ctx: Context, camp: CampaignRecord, counts: dict[str, int]) -> float | None:
    """Wall time the campaign should end, from the pacing and the delay: left / (instances /
    seconds per message). A rough figure: faults, windows and pauses are not foreseen."""
    if camp.state not in ("running", "scheduled"):
        return None
    left = counts["pending"] + counts["queued"]
    per_msg = (
        max(ctx.config.queue.pacing_interval, (camp.delay_min + camp.delay_max) / 2, 0.001)
        * ctx.config.daemon.time_scale
    )
    rate = max(1, len(camp.instance_ids)) / per_msg
    start = max(time.time(), camp.start_at or 0.0)
    return start + left / rate


@command(
    "campaign.create",
    blocking=True,
    args={
        "name": v.label,
        "instance_ids": v.id_list,
        "text": optional(v.text_of(65536)),
        "media": optional(v.media),
        "recipients": optional(_recipients),
        "start_at": optional(v.number),
        "window": optional(_window),
        "delay": optional(_delay),
        "check_numbers": optional(v.flag),
    },
)
def create(
    ctx: Context,
    name: str,
    instance_ids: list[str],
    text: str | None = None,
    media: dict[str, Any] | None = None,
    recipients: list[dict[str, Any]] | None = None,
    start_at: float | None = None,
    window: dict[str, str] | None = None,
    delay: tuple[float, float] | None = None,
    check_numbers: bool = False,
) -> dict[str, Any]:
    if not instance_ids:
        raise BadRequest("instance_ids: at least one instance", {"field": "instance_ids"})
    if text is None and media is None:
        raise BadRequest("a campaign needs text or media", {"field": "text"})
    if text is not None and len(text) > ctx.config.queue.max_text_length:
        raise TooLarge("text: too long", {"field": "text"})
    tenants = set()
    for iid in dict.fromkeys(instance_ids):
        try:
            tenants.add(ctx.instance(iid).tenant)
        except NotFound:
            raise NotFound(f"no instance {iid!r}", {"field": "instance_ids"}) from None
    if len(tenants) != 1:
        raise BadRequest("instances of several tenants", {"field": "instance_ids"})
    ctx.require_accepting()
    cid = uuid.uuid4().hex[:16].upper()
    rows = render_rows(cid, text, recipients or [])
    now = time.time()
    lo, hi = delay or (0.0, 0.0)
    rec = CampaignRecord(
        campaign_id=cid,
        tenant=tenants.pop(),
        name=name,
        state="draft",
        instance_ids=tuple(dict.fromkeys(instance_ids)),
        text=text,
        media=media,
        start_at=start_at,
        window=window,
        delay_min=lo,
        delay_max=hi,
        check_numbers=check_numbers,
        duplicates=0,
        reason=None,
        created_at=now,
        updated_at=now,
    )
    ctx.store.campaigns.create(rec).result()
    added, dups = ctx.store.campaigns.add_recipients(cid, rows).result() if rows else (0, 0)
    return {"campaign_id": cid, "state": "draft", "added": added, "duplicates": dups}


@command("campaign.add_recipients", blocking=True, args={**CID, "recipients": _recipients})
def add_recipients(
    ctx: Context, campaign_id: str, recipients: list[dict[str, Any]]
) -> dict[str, Any]:
    camp = campaign_of(ctx, campaign_id)
    if camp.state in ("done", "cancelled"):
        raise InvalidState(f"campaign {campaign_id} is {camp.state}", {"state": camp.state})
    rows = render_rows(campaign_id, camp.text, recipients)
    added, dups = ctx.store.campaigns.add_recipients(campaign_id, rows).result()
    # The feeder may have found nothing left and ended the campaign while these were being
    # written: they are pending, so it runs again.
    if added and camp.state == "running":
        again = ctx.store.campaigns.set_state(campaign_id, "running", only_if=("done",))
        if again.result():
            manager(ctx).wake(campaign_id)
    return {"campaign_id": campaign_id, "added": added, "duplicates": dups}


def _move(ctx: Context, campaign_id: str, to: str, frm: tuple[str, ...]) -> dict[str, Any]:
    camp = campaign_of(ctx, campaign_id)
    ctx.require_accepting()
    if camp.state not in frm:
        raise InvalidState(
            f"campaign {campaign_id} is {camp.state}; cannot go to {to}", {"state": camp.state}
        )
    if not ctx.store.campaigns.set_state(campaign_id, to, only_if=frm).result():
        raise InvalidState(f"campaign {campaign_id} changed meanwhile", {"state": camp.state})
    body: dict[str, Any] = {
        "time": time.time(),
        "tenant": camp.tenant,
        "instance_id": None,
        "campaign_id": campaign_id,
        "state": to,
        "counts": ctx.store.campaigns.counts(campaign_id),
    }
    ctx.store.log_event("campaign.state", body)
    ctx.fleet.publish("campaign.state", body)
    manager(ctx).wake(campaign_id)
    return {"campaign_id": campaign_id, "state": to}


@command("campaign.start", blocking=True, args=CID)
def start(ctx: Context, campaign_id: str) -> dict[str, Any]:
    camp = campaign_of(ctx, campaign_id)
    later = camp.start_at is not None and camp.start_at > time.time()
    return _move(ctx, campaign_id, "scheduled" if later else "running", ("draft",))


@command("campaign.pause", blocking=True, args=CID)
def pause(ctx: Context, campaign_id: str) -> dict[str, Any]:
    return _move(ctx, campaign_id, "paused", ("running", "scheduled"))


@command("campaign.resume", blocking=True, args=CID)
def resume(ctx: Context, campaign_id: str) -> dict[str, Any]:
    camp = campaign_of(ctx, campaign_id)
    later = camp.start_at is not None and camp.start_at > time.time()
    return _move(ctx, campaign_id, "scheduled" if later else "running", ("paused",))


@command("campaign.cancel", blocking=True, args=CID)
def cancel(ctx: Context, campaign_id: str) -> dict[str, Any]:
    return _move(ctx, campaign_id, "cancelled", ("draft", "scheduled", "running", "paused"))


@command("campaign.get", readonly=True, args=CID)
def get(ctx: Context, campaign_id: str) -> dict[str, Any]:
    return view(ctx, campaign_of(ctx, campaign_id))


def _state(value: Any) -> str:
    if value not in CAMPAIGN_STATES:
        raise ArgError(f"expected one of {', '.join(CAMPAIGN_STATES)}")
    return str(value)


@command("campaign.list", readonly=True, args={"state": optional(_state)})
def list_(ctx: Context, state: str | None = None) -> dict[str, Any]:
    camps = ctx.store.campaigns.list_all(tenant=ctx.tenant_filter, state=state)
    return {"campaigns": [view(ctx, c, detail=False) for c in camps]}


@command(
    "campaign.recipients",
    readonly=True,
    args={
        **CID,
        "status": optional(_status),
        "after": optional(lambda x: int(v.number(x))),
        "limit": optional(v.limit),
    },
)
def recipients(
    ctx: Context,
    campaign_id: str,
    status: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    campaign_of(ctx, campaign_id)
    rows = ctx.store.campaigns.recipients(campaign_id, status=status, after=after, limit=limit)
    times = ctx.store.campaigns.message_times(r.message_id for r in rows if r.message_id)
    items = [
        {
            "seq": r.seq,
            "to": r.number,
            "status": r.status,
            "instance_id": r.instance_id,
            "message_id": r.message_id,
            "text": r.text,
            "time": times.get(r.message_id or "", r.updated_at),
            "error": r.error,
        }
        for r in rows
    ]
    nxt = items[-1]["seq"] if len(items) == limit else None
    return {"recipients": items, "next": nxt}
