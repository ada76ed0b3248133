"""Server-sent events for the browser: the tenant's events, and one pairing's rotating codes.

Each browser stream is one `events.subscribe` with the browser's own token (http/events.py),
so the daemon filters by tenant: nobody sees another tenant's instances. The browser gets
named SSE events: `state` (an instance's new state, written into the page at once) and
`change` (anything else that moves the numbers: the page refetches its fragment).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import anyio
import segno

from waz_actors.http.client import DaemonError, DaemonUnreachable
from waz_actors.http.events import AsyncSubscription, Event
from waz_actors.http.gateway import Gateway

KEEPALIVE = 15.0  # seconds between SSE comments: proxies keep the stream, dead tabs show up
TICK = 0.5  # how often a quiet stream looks whether the gateway is stopping

# uvicorn waits for open responses before it stops (up to 5 s, then cancels them): an open
# dashboard would delay every stop of the gateway, and of the daemon that stops it last. So the
# streams end by themselves on SIGTERM/SIGINT; uvicorn's own handlers still run after ours.
_stop = {"watching": False, "stopping": False}


def _watch_shutdown() -> None:
    if _stop["watching"]:
        return
    _stop["watching"] = True
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            _stop["stopping"] = True
            if callable(previous):
                previous(signum, frame)

        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread (an embedding app): streams end on cancel
            return


async def _events(sub: AsyncSubscription) -> AsyncIterator[Event | None]:
    """The subscription's events, None when a keep-alive is due; ends when the gateway stops.

    Raises DaemonError / DaemonUnreachable when the renew fails (the daemon restarted)."""
    _watch_shutdown()
    quiet = time.monotonic()
    while not _stop["stopping"]:
        ev = await sub.recv(TICK)
        now = time.monotonic()
        if ev is not None:
            quiet = now
            yield ev
        elif now - quiet >= KEEPALIVE:
            quiet = now
            yield None


def sse(name: str, data: dict[str, Any]) -> bytes:
    # json.dumps escapes newlines, so the data is always one `data:` line.
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def qr_image(qr: str) -> str:
    """The QR as an SVG data URI, drawn here: the browser loads no QR library."""
    return str(segno.make(qr, error="l").svg_data_uri(scale=6, border=2))


async def follow(gw: Gateway, token: str, instance_id: str | None) -> AsyncIterator[bytes]:
    """The dashboard's live stream: every instance of the tenant, or one."""
    topics = [f"instance.{instance_id}.", f"message.{instance_id}."] if instance_id else [
        "instance.", "message."
    ]  # fmt: skip
    sub = AsyncSubscription(gw.settings, token, topics)
    try:
        try:
            await sub.open()
        except (DaemonError, DaemonUnreachable) as e:
            yield sse("failed", {"message": str(e)})
            return
        yield b"retry: 3000\n\n"
        try:
            async for ev in _events(sub):
                if ev is None:
                    yield b": keep-alive\n\n"
                    continue
                topic, body = ev
                if topic.endswith(".state"):
                    yield sse("state", _state(body))
                else:
                    yield sse("change", {"topic": topic, "instance_id": body.get("instance_id")})
        except (DaemonError, DaemonUnreachable):
            return  # the browser reconnects and subscribes anew
    finally:
        await _close(sub)


async def _close(sub: AsyncSubscription) -> None:
    # The browser went away: Starlette cancels the response, and a cancelled scope would cancel
    # the unsubscribe too (the daemon would then keep the subscription until its ttl).
    with anyio.CancelScope(shield=True):
        await sub.close()


def _state(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body.get(k) for k in ("instance_id", "state", "previous", "reason")}


async def pair(
    gw: Gateway, token: str, instance_id: str, phone: str | None
) -> AsyncIterator[bytes]:
    """Starts pairing for this stream and relays its codes until the instance is online.

    `instance.pair` names this stream's subscription, so the daemon sends the rotating QR codes
    to it alone (never to the PUB socket or other streams)."""
    sub = AsyncSubscription(gw.settings, token, [f"instance.{instance_id}."])
    try:
        try:
            sid = await sub.open()
            args: dict[str, Any] = {"instance_id": instance_id, "subscription_id": sid}
            if phone:
                args["phone"] = phone
            first = await gw.call("instance.pair", args, token)
        except (DaemonError, DaemonUnreachable) as e:
            message = e.message if isinstance(e, DaemonError) else str(e)
            yield sse("failed", {"message": message})
            return
        yield _code(first if isinstance(first, dict) else {})
        try:
            async for ev in _events(sub):
                if ev is None:
                    yield b": keep-alive\n\n"
                    continue
                topic, body = ev
                if topic.endswith(".qr") and (body.get("qr") or body.get("code")):
                    yield _code(body)
                elif topic.endswith(".state"):
                    yield sse("state", _state(body))
                    if body.get("state") == "online":
                        yield sse("paired", {"instance_id": instance_id})
                        return
                    if body.get("state") in ("logged_out", "banned", "deleted"):
                        yield sse("failed", {"message": f"the instance is {body.get('state')}"})
                        return
        except (DaemonError, DaemonUnreachable) as e:
            yield sse("failed", {"message": str(e)})
            return
        yield sse("failed", {"message": "the gateway is stopping"})
    finally:
        await _close(sub)


def _code(found: dict[str, Any]) -> bytes:
    if found.get("code"):
        return sse("code", {"code": str(found["code"])})
    if found.get("qr"):
        image = qr_image(str(found["qr"]))
        return sse("qr", {"image": image, "expires_at": found.get("expires_at")})
    return b": no code yet\n\n"
