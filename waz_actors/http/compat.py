"""The seeds' routes and WAZIPER's, with WAZIPER's field names and answers.

Every answer is `{"status": "success" | "error", "message": ...}` plus the route's data, with
HTTP 200 like WAZIPER's own server, so a panel written for WAZIPER (which reads `status` and
often uses file_get_contents, which gives nothing on a 4xx) switches by its base URL alone. An
error also carries the protocol `code`; 429 and 503 cases carry `Retry-After` as well.
The mapping, and what differs, is in docs/http.md ("Migrating from WAZIPER").
"""

from __future__ import annotations

import base64
import io
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from waz_actors.http.client import DaemonError
from waz_actors.http.errors import HttpError, error_headers
from waz_actors.http.gateway import Gateway, body_args, query_args, token_of

Handler = Callable[[Gateway, Request, dict[str, Any], str | None], Awaitable[Response]]


def ok(message: str = "Success", **data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "message": message, **data})


def failed(
    code: str, message: str, details: dict[str, Any] | None = None, **extra: Any
) -> JSONResponse:
    body = {"status": "error", "message": message, "code": code, **extra}
    if details:
        body["details"] = details
    return JSONResponse(body, headers=error_headers(code, details or {}))


def _text(args: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = args.get(name)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
    return None


def recipient(value: Any) -> Any:
    """WAZIPER's chat_id: a number, a phone string, or a JID (whatsapp-web.js' @c.us too)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.endswith("@c.us"):
        return value[: -len("@c.us")] + "@s.whatsapp.net"
    return value  # the daemon validates (bad_request naming `to`)


def send_args(instance_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The seeds' and WAZIPER's send fields -> message.send's arguments."""
    to = args.get("to", args.get("chat_id"))
    if to is None:
        raise HttpError("bad_request", "chat_id (or to): required", {"field": "chat_id"})
    text = _text(args, "text", "message", "caption")
    out: dict[str, Any] = {"instance_id": instance_id, "to": recipient(to)}
    media_url = _text(args, "media_url")
    if media_url:
        media: dict[str, Any] = {"url": media_url}
        if text is not None:
            media["caption"] = text
        filename = _text(args, "filename")
        if filename:
            media["filename"] = filename
        out["media"] = media
    elif text is not None:
        out["text"] = text
    key = _text(args, "idempotency_key")
    if key:
        out["idempotency_key"] = key
    return out


def qr_data_url(qr: str) -> str:
    import segno

    buf = io.BytesIO()
    segno.make(qr, error="l").save(buf, kind="png", scale=6, border=2)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _instance_id(request: Request, args: dict[str, Any]) -> Any:
    iid = request.path_params.get("instance_id") or args.get("instance_id")
    if iid is None or iid == "":
        raise HttpError("bad_request", "instance_id: required", {"field": "instance_id"})
    return iid


# -- handlers: (gateway, request, arguments from query + body, token) -> response -----------


async def queue_status(
    gw: Gateway, req: Request, args: dict[str, Any], tok: str | None
) -> Response:
    st = await gw.call("queue.status", {"instance_id": _instance_id(req, args)}, tok)
    return ok(data=st)


async def send(gw: Gateway, req: Request, args: dict[str, Any], tok: str | None) -> Response:
    sent = await gw.call("message.send", send_args(_instance_id(req, args), args), tok)
    return ok("Queued" if sent.get("created", True) else "Already queued", data=sent)


async def instance(gw: Gateway, req: Request, args: dict[str, Any], tok: str | None) -> Response:
    st = await gw.call("instance.get", {"instance_id": _instance_id(req, args)}, tok)
    if st.get("state") != "online":
        return JSONResponse(
            {"status": "error", "message": f"not logged in (state {st.get('state')})",
             "relogin": st.get("state") in ("logged_out", "pairing", "stopped"),
             "state": st.get("state")}
        )  # fmt: skip
    jid = st.get("jid")
    account = {"id": jid, "name": st.get("push_name"), "instance_id": st["instance_id"]}
    return ok(data=account, state=st.get("state"))


async def get_qrcode(gw: Gateway, req: Request, args: dict[str, Any], tok: str | None) -> Response:
    iid = _instance_id(req, args)
    try:
        paired = await gw.call("instance.pair", {"instance_id": iid}, tok)
    except DaemonError as e:
        # WAZIPER's panel makes the instance id up and asks for a QR: create it then.
        if e.code != "not_found" or not gw.settings.create_driver:
            raise
        await gw.call(
            "instance.create", {"instance_id": iid, "driver": gw.settings.create_driver}, tok
        )
        paired = await gw.call("instance.pair", {"instance_id": iid}, tok)
    qr = paired.get("qr")
    if not qr:
        return failed("invalid_state", "no QR code for this instance", paired)
    return ok(base64=qr_data_url(qr), expires_at=paired.get("expires_at"))


async def get_groups(gw: Gateway, req: Request, args: dict[str, Any], tok: str | None) -> Response:
    try:
        res = await gw.call("group.list", {"instance_id": _instance_id(req, args)}, tok)
    except DaemonError as e:
        if e.code == "unknown_command":
            return failed(e.code, "this daemon cannot list groups yet (group.list is missing)")
        raise
    groups = res.get("groups", res) if isinstance(res, dict) else res
    return ok(data=groups)


async def logout(gw: Gateway, req: Request, args: dict[str, Any], tok: str | None) -> Response:
    state = await gw.call("instance.logout", {"instance_id": _instance_id(req, args)}, tok)
    return ok(data=state)


async def reset_session(
    gw: Gateway, req: Request, args: dict[str, Any], tok: str | None
) -> Response:
    state = await gw.call("instance.reset", {"instance_id": _instance_id(req, args)}, tok)
    return ok(data=state)


def endpoint(gw: Gateway, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        try:
            args: dict[str, Any] = query_args(request)
            if request.method == "POST":
                args.update(await body_args(request, gw.settings.max_body))
            return await handler(gw, request, args, token_of(request))
        except HttpError as e:
            return failed(e.code, e.message, e.details)
        except DaemonError as e:
            return failed(e.code, e.message, e.details)

    handle.__name__ = handler.__name__
    return handle


# (method, path, handler, summary); the OpenAPI document lists them under "compat".
ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("GET", "/queue-status/{instance_id}", queue_status, "The seeds' queue status"),
    ("POST", "/send-message/{instance_id}", send, "The seeds' send (JSON or form)"),
    ("GET", "/instance", instance, "WAZIPER: the linked account, or relogin"),
    ("GET", "/get_qrcode", get_qrcode, "WAZIPER: QR code as a PNG data URL"),
    ("GET", "/get_groups", get_groups, "WAZIPER: groups (needs group.list)"),
    ("GET", "/logout", logout, "WAZIPER: unlink the device"),
    ("POST", "/send_message", send, "WAZIPER: send (form or JSON: chat_id, caption, media_url)"),
    ("POST", "/reset_session", reset_session, "WAZIPER: reset the breaker and reconnect"),
)


def routes(gw: Gateway) -> list[Route]:
    return [Route(path, endpoint(gw, h), methods=[m]) for m, path, h, _ in ROUTES]
