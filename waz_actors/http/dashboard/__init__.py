"""The web dashboard: the tenant's instances, live, with pairing, a test send and the queue.

Plain server-rendered HTML with a little inline JavaScript (no resource from the internet),
served by the gateway at `/` (http/app.py's `extra_routes`). It speaks to the daemon like every
other route: control commands with the signed-in browser's token, so the daemon scopes all of
it to that token's tenant. Pages: `/` (sign-in, or the instances), `/i/{id}` (one instance),
`/i/{id}/pair` (POST: the pairing page). Fragments for live refresh: `/dashboard/fleet`,
`/i/{id}/live`. Streams (SSE): `/dashboard/events`, `/i/{id}/pair/events`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from waz_actors.http import gateway
from waz_actors.http.client import DaemonError
from waz_actors.http.dashboard import live, session, views
from waz_actors.http.gateway import Gateway

QUEUE_SHOWN = 100  # messages on an instance page (queue.list's default page)
ACTIONS = ("start", "stop", "restart", "reset", "logout")


def _gw(request: Request) -> Gateway:
    gw = request.app.state.gateway
    assert isinstance(gw, Gateway)
    return gw


def _html(request: Request, render: Any, http_status: int = 200, **kw: Any) -> Response:
    """`render(nonce, ...)` -> a page with the security headers and that script nonce."""
    nonce = session.nonce()
    return session.secure_headers(
        HTMLResponse(render(nonce=nonce, **kw), status_code=http_status), nonce
    )


def _signed_out(request: Request, error: str = "") -> Response:
    resp = _html(request, views.sign_in, 401 if error else 200, error=error)
    return session.sign_out(resp) if error else resp


def _failure(request: Request, token: str, e: DaemonError) -> Response:
    if e.code == "unauthorized":
        return _signed_out(request, "The daemon refused this token (revoked?). Sign in again.")
    titles = {"not_found": "Not found", "unreachable": "The daemon does not answer"}
    status = {"not_found": 404, "unreachable": 503}.get(e.code, 400)
    return _html(
        request,
        views.error_page,
        status,
        title=titles.get(e.code, "Refused"),
        message=f"{e.code}: {e.message}",
        csrf=session.csrf_for(token),
    )


async def _fleet_rows(gw: Gateway, token: str) -> list[dict[str, Any]]:
    """instance.list, then instance.get of each for the hourly counts (concurrently)."""
    listed = await gw.call("instance.list", {}, token)
    items = sorted(listed.get("instances") or [], key=lambda r: str(r.get("instance_id")))

    async def one(item: dict[str, Any]) -> dict[str, Any]:
        try:
            info = await gw.call("instance.get", {"instance_id": item["instance_id"]}, token)
        except DaemonError:
            return dict(item)  # deleted meanwhile, or busy: the list's own columns still show
        return {
            **item,
            "in_flight": info.get("in_flight", 0),
            "success_rate": info.get("success_rate"),
            "conflicts": (info.get("conflicts") or {}).get("count", 0),
            "attempts": (info.get("throttle") or {}).get("attempts_in_window", 0),
        }

    return list(await asyncio.gather(*(one(i) for i in items)))


async def _status_part(gw: Gateway, token: str, iid: str) -> str:
    info, queue = await asyncio.gather(
        gw.call("instance.get", {"instance_id": iid}, token),
        gw.call("queue.status", {"instance_id": iid}, token),
    )
    return views.instance_status(info, queue)


def _view(request: Request) -> dict[str, str]:
    """The messages' filter and page from the query: `status`, `after` (the daemon checks them)."""
    return {k: v for k in ("status", "after") if (v := request.query_params.get(k, ""))}


async def _queue_part(gw: Gateway, token: str, iid: str, view: dict[str, str]) -> str:
    page = await gw.call("queue.list", {"instance_id": iid, "limit": QUEUE_SHOWN, **view}, token)
    return views.instance_queue(iid, page.get("messages") or [], view, page.get("next"))


async def _instance_parts(request: Request, token: str, iid: str) -> tuple[str, str]:
    gw, view = _gw(request), _view(request)
    return await asyncio.gather(_status_part(gw, token, iid), _queue_part(gw, token, iid, view))


# -- pages -------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    if request.query_params.get("access_token"):
        # WAZIPER's panel links carry the token: keep it in the cookie, drop it from the URL.
        return session.sign_in(
            request, request.query_params["access_token"], session.without_token(request)
        )
    token = session.token_of(request)
    if token is None:
        return _signed_out(request)
    try:
        rows = await _fleet_rows(_gw(request), token)
    except DaemonError as e:
        return _failure(request, token, e)
    return _html(request, views.overview, rows=rows, csrf=session.csrf_for(token))


async def login(request: Request) -> Response:
    if not session.same_origin(request):
        return Response("cross-site request refused", status_code=403)
    form = await gateway.body_args(request, 4096)
    token = str(form.get("token") or "").strip()
    if not token:
        return _signed_out(request, "Give a token.")
    try:
        await _gw(request).call("instance.list", {}, token)
    except DaemonError as e:
        if e.code == "unauthorized":
            return _signed_out(request, "The daemon refused this token.")
        return _failure(request, token, e)
    return session.sign_in(request, token, "/")


async def logout(request: Request) -> Response:
    _token, refused = await _posted(request)
    if refused is not None:
        return refused
    return session.sign_out(RedirectResponse("/", status_code=303))


async def instance_page(request: Request) -> Response:
    if request.query_params.get("access_token"):
        return session.sign_in(
            request, request.query_params["access_token"], session.without_token(request)
        )
    token = session.token_of(request)
    if token is None:
        return _signed_out(request)
    iid = request.path_params["instance_id"]
    sent = request.query_params.get("sent", "")
    flash = f"Queued message {sent}." if sent.replace("-", "").isalnum() else ""
    try:
        status, queue = await _instance_parts(request, token, iid)
    except DaemonError as e:
        return _failure(request, token, e)
    return _html(
        request, views.instance, iid=iid, status=status, queue=queue,
        csrf=session.csrf_for(token), flash=flash, view=_view(request),
    )  # fmt: skip


async def _posted(request: Request) -> tuple[str, Response | None]:
    """(token, None) for a signed-in same-site POST with its CSRF token; else the refusal."""
    token = session.token_of(request)
    if token is None:
        return "", _signed_out(request, "Sign in first.")
    if not session.same_origin(request):
        return token, Response("cross-site request refused", status_code=403)
    form = await gateway.body_args(request, _gw(request).settings.max_body)
    request.state.form = form
    if not session.csrf_ok(token, form.get("csrf")):
        return token, Response("missing or wrong CSRF token; reload the page", status_code=403)
    return token, None


async def send(request: Request) -> Response:
    token, refused = await _posted(request)
    if refused is not None:
        return refused
    iid = request.path_params["instance_id"]
    form = request.state.form
    args = {"instance_id": iid, "to": str(form.get("to", "")), "text": str(form.get("text", ""))}
    gw = _gw(request)
    try:
        result = await gw.call("message.send", args, token)
    except DaemonError as e:
        if e.code in ("not_found", "unauthorized", "unreachable"):
            return _failure(request, token, e)
        try:
            status, queue = await _instance_parts(request, token, iid)
        except DaemonError as again:
            return _failure(request, token, again)
        return _html(
            request, views.instance, 400, iid=iid, status=status, queue=queue,
            csrf=session.csrf_for(token), error=f"Not queued: {e.message}",
        )  # fmt: skip
    query = urlencode({"sent": result.get("message_id", "")})
    return RedirectResponse(f"{views.path_of(iid)}?{query}", status_code=303)


async def action(request: Request) -> Response:
    token, refused = await _posted(request)
    if refused is not None:
        return refused
    iid = request.path_params["instance_id"]
    what = str(request.state.form.get("action", ""))
    if what not in ACTIONS:
        return Response("unknown action", status_code=400)
    try:
        await _gw(request).call(f"instance.{what}", {"instance_id": iid}, token)
    except DaemonError as e:
        return _failure(request, token, e)
    return RedirectResponse(views.path_of(iid), status_code=303)


async def pair_page(request: Request) -> Response:
    token, refused = await _posted(request)
    if refused is not None:
        return refused
    iid = request.path_params["instance_id"]
    query = {"csrf": session.csrf_for(token)}
    phone = str(request.state.form.get("phone") or "").strip()
    if phone:
        query["phone"] = phone
    events = f"{views.path_of(iid)}/pair/events?{urlencode(query)}"
    return _html(request, views.pairing, iid=iid, events=events, csrf=query["csrf"])


# -- fragments and streams ---------------------------------------------------------------


async def fleet_fragment(request: Request) -> Response:
    token = session.token_of(request)
    if token is None:
        return Response("sign in", status_code=401)
    try:
        rows = await _fleet_rows(_gw(request), token)
    except DaemonError as e:
        return Response(e.code, status_code=401 if e.code == "unauthorized" else 503)
    return session.secure_headers(HTMLResponse(views.fleet(rows)), session.nonce())


async def instance_fragment(request: Request) -> Response:
    token = session.token_of(request)
    if token is None:
        return Response("sign in", status_code=401)
    iid, gw = request.path_params["instance_id"], _gw(request)
    try:
        if request.query_params.get("part") == "queue":
            part = await _queue_part(gw, token, iid, _view(request))
        else:
            part = await _status_part(gw, token, iid)
    except DaemonError as e:
        return Response(e.code, status_code=401 if e.code == "unauthorized" else 503)
    return session.secure_headers(HTMLResponse(part), session.nonce())


def _stream(body: Any) -> StreamingResponse:
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # nginx: pass through
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)


async def events(request: Request) -> Response:
    token = session.token_of(request)
    if token is None:
        return Response("sign in", status_code=401)
    iid = request.query_params.get("instance") or None
    return _stream(live.follow(_gw(request), token, iid))


async def pair_events(request: Request) -> Response:
    # EventSource can only GET: starting to pair is a change, so it takes the CSRF token here.
    token = session.token_of(request)
    if token is None:
        return Response("sign in", status_code=401)
    if not session.csrf_ok(token, request.query_params.get("csrf")):
        return Response("missing or wrong CSRF token", status_code=403)
    iid = request.path_params["instance_id"]
    phone = request.query_params.get("phone") or None
    return _stream(live.pair(_gw(request), token, iid, phone))


def routes() -> list[BaseRoute]:
    """For `build_app(settings, extra_routes=routes())`."""
    return [
        Route("/", index, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/dashboard/fleet", fleet_fragment, methods=["GET"]),
        Route("/dashboard/events", events, methods=["GET"]),
        Route("/i/{instance_id}", instance_page, methods=["GET"]),
        Route("/i/{instance_id}/live", instance_fragment, methods=["GET"]),
        Route("/i/{instance_id}/send", send, methods=["POST"]),
        Route("/i/{instance_id}/action", action, methods=["POST"]),
        Route("/i/{instance_id}/pair", pair_page, methods=["POST"]),
        Route("/i/{instance_id}/pair/events", pair_events, methods=["GET"]),
    ]


__all__ = ["routes"]
