"""The native REST API under /v1: one table row per route, each a control command.

A new command is one `Op(...)` line: the path's `{names}` and the declared query parameters
become arguments, a JSON (or form) body is merged in, and the daemon validates the lot (an
unknown or bad argument is its bad_request, naming the field). The OpenAPI document is built
from the same table (openapi.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from waz_actors.http.client import DaemonError
from waz_actors.http.errors import HttpError, error_response
from waz_actors.http.gateway import Gateway, body_args, token_of

# name -> (JSON schema type, converter)
QUERY_TYPES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": ("string", str),
    "int": ("integer", int),
}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    cmd: str
    summary: str
    tag: str
    query: dict[str, str] = field(default_factory=dict)  # name -> QUERY_TYPES key
    body: dict[str, str] = field(default_factory=dict)  # documented body fields -> JSON type
    required: tuple[str, ...] = ()  # required body fields
    created: bool = False  # 201 instead of 200

    @property
    def path_params(self) -> list[str]:
        return [p.strip("{}") for p in self.path.split("/") if p.startswith("{")]


INST, MSG = "/v1/instances/{instance_id}", "/v1/messages/{message_id}"
HOOK = "/v1/webhooks/{webhook_id}"
OPS: tuple[Op, ...] = (
    Op("GET", "/v1/ping", "ping", "Is the daemon there (any token)", "daemon"),
    Op("GET", "/v1/status", "daemon.status", "Instances per state, queue, alarms", "daemon"),
    Op("GET", "/v1/metrics", "daemon.metrics", "The daemon's figures (admin)", "daemon"),
    Op("GET", "/v1/instances", "instance.list", "List instances", "instances", {"state": "str"}),
    Op("POST", "/v1/instances", "instance.create", "Create an instance", "instances",
       body={"driver": "string", "instance_id": "string", "tenant": "string", "settings": "object"},
       required=("driver",), created=True),
    Op("GET", f"{INST}", "instance.get", "One instance in detail", "instances"),
    Op("DELETE", f"{INST}", "instance.delete", "Delete (cancels queue)", "instances"),
    Op("POST", f"{INST}/start", "instance.start", "Start", "instances"),
    Op("POST", f"{INST}/stop", "instance.stop", "Stop", "instances"),
    Op("POST", f"{INST}/restart", "instance.restart", "Restart", "instances"),
    Op("POST", f"{INST}/reset", "instance.reset", "Reset breaker", "instances"),
    Op("POST", f"{INST}/logout", "instance.logout", "Unlink the device", "instances"),
    Op("POST", f"{INST}/pair", "instance.pair", "QR code, or a pairing code for `phone`",
       "pairing", body={"phone": "string"}),
    Op("POST", f"{INST}/messages", "message.send", "Send (answers once durable)",
       "messages", body={"to": "string", "text": "string", "media": "object",
                         "idempotency_key": "string", "ttl": "number"},
       required=("to",), created=True),
    Op("GET", f"{MSG}", "message.get", "A message with its history", "messages"),
    Op("POST", f"{MSG}/cancel", "message.cancel", "Cancel a queued message", "messages"),
    Op("GET", f"{INST}/queue", "queue.status", "Depth, success rate, health", "queue"),
    Op("GET", f"{INST}/queue/messages", "queue.list", "Messages of the queue", "queue",
       {"status": "str", "limit": "int", "after": "str"}),
    Op("POST", f"{INST}/queue/retry", "queue.retry", "Retry failed messages", "queue",
       body={"message_ids": "array"}),
    Op("POST", f"{INST}/queue/purge", "queue.purge", "Cancel queued messages", "queue",
       body={"status": "string"}),
    # Commands of other branches (inbox, groups, contacts, webhooks, campaigns): a daemon without
    # them answers unknown_command, which is 501 here.
    Op("GET", f"{INST}/inbox", "inbox.list", "Received messages", "inbox",
       {"limit": "int", "after": "str"}),
    Op("GET", f"{INST}/groups", "group.list", "Groups of the linked account", "groups"),
    Op("POST", f"{INST}/contacts/check", "contact.check", "Numbers on WhatsApp?",
       "contacts", body={"numbers": "array"}, required=("numbers",)),
    Op("GET", "/v1/webhooks", "webhook.list", "Webhooks", "webhooks"),
    Op("POST", "/v1/webhooks", "webhook.create", "Add a webhook", "webhooks",
       body={"url": "string", "events": "array", "secret": "string", "tenant": "string"},
       required=("url",), created=True),
    Op("GET", f"{HOOK}", "webhook.get", "A webhook and its deliveries per status", "webhooks"),
    Op("DELETE", f"{HOOK}", "webhook.delete", "Remove a webhook", "webhooks"),
    Op("GET", f"{HOOK}/deliveries", "webhook.deliveries", "Its deliveries, oldest first",
       "webhooks", {"status": "str", "after": "int", "limit": "int"}),
    Op("POST", f"{HOOK}/redeliver", "webhook.redeliver", "Send dead and failed ones again",
       "webhooks", body={"event_ids": "array"}),
    Op("POST", f"{HOOK}/test", "webhook.test", "Send it a ping", "webhooks"),
    Op("GET", "/v1/campaigns", "campaign.list", "Campaigns", "campaigns"),
    Op("POST", "/v1/campaigns", "campaign.create", "Start a campaign", "campaigns", created=True),
    Op("GET", "/v1/campaigns/{campaign_id}", "campaign.get", "One campaign", "campaigns"),
    Op("GET", "/v1/tokens", "token.list", "Tokens (admin)", "tokens"),
    Op("POST", "/v1/tokens", "token.create", "Create a tenant token (admin)", "tokens",
       body={"tenant": "string", "label": "string"}, required=("tenant",), created=True),
    Op("DELETE", "/v1/tokens/{token_id}", "token.revoke", "Revoke a token (admin)", "tokens"),
)  # fmt: skip


async def op_args(op: Op, request: Request, max_body: int) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if op.method in ("POST", "PUT", "PATCH"):
        args.update(await body_args(request, max_body))
    for name, kind in op.query.items():
        raw = request.query_params.get(name)
        if raw is None:
            continue
        try:
            args[name] = QUERY_TYPES[kind][1](raw)
        except ValueError:
            raise HttpError(
                "bad_request", f"{name}: must be {QUERY_TYPES[kind][0]}", {"field": name}
            ) from None
    args.update(request.path_params)  # the path names the object, whatever the body says
    return args


def endpoint(gw: Gateway, op: Op) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            args = await op_args(op, request, gw.settings.max_body)
            result = await gw.call(op.cmd, args or None, token_of(request))
        except HttpError as e:
            return error_response(e.code, e.message, e.details)
        except DaemonError as e:
            message = e.message
            if e.code == "unknown_command":
                message = f"this daemon has no {op.cmd} command yet (a newer daemon has it)"
            return error_response(e.code, message, e.details)
        return JSONResponse(result, status_code=201 if op.created else 200)

    handle.__name__ = op.cmd.replace(".", "_")
    return handle


# Starlette tries routes in order: the send path first saves ~20 regex matches per message.
HOT = ("message.send", "queue.status", "message.get")


def routes(gw: Gateway) -> list[Route]:
    ordered = sorted(OPS, key=lambda op: HOT.index(op.cmd) if op.cmd in HOT else len(HOT))
    return [Route(op.path, endpoint(gw, op), methods=[op.method]) for op in ordered]
