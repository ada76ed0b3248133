"""What every route shares: the daemon client, the settings, request parsing, own metrics."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.requests import Request

from waz_actors.http.client import AsyncControlClient, DaemonError, DaemonUnreachable
from waz_actors.http.errors import HttpError

# Latency buckets around what a local round trip costs (0.1 ms - 10 s).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class Settings:
    endpoint: str
    timeout: float = 10.0
    max_body: int = 1 << 20
    admin_token_file: str = ""
    create_driver: str = "whatsmeow"
    curve_server_key: bytes | None = None
    curve_keypair: tuple[bytes, bytes] | None = None


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: AsyncControlClient | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "waz_gateway_control_requests",
            "Control requests the gateway sent, by command and reply code ('ok' on success)",
            ["cmd", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "waz_gateway_control_latency_seconds",
            "Round trip of the gateway's control requests",
            ["cmd"],
            buckets=BUCKETS,
            registry=self.registry,
        )

    async def start(self) -> None:
        s = self.settings
        self.client = AsyncControlClient(
            s.endpoint,
            s.timeout,
            curve_server_key=s.curve_server_key,
            curve_keypair=s.curve_keypair,
        )
        self.client.start()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    def admin_token(self) -> str | None:
        """Read on each use: the daemon may create or rotate it after the gateway started."""
        if not self.settings.admin_token_file:
            return None
        try:
            return Path(self.settings.admin_token_file).read_text().strip() or None
        except OSError:
            return None

    async def call(
        self,
        cmd: str,
        args: dict[str, Any] | None,
        token: str | None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """The daemon's result; DaemonError (code 'unreachable' when there is no reply)."""
        assert self.client is not None, "gateway not started"
        started = time.perf_counter()
        code = "ok"
        try:
            return await self.client.call(cmd, args, token, timeout=timeout)
        except DaemonError as e:
            code = e.code
            raise
        except DaemonUnreachable as e:
            code = "unreachable"
            raise DaemonError("unreachable", f"the daemon does not answer: {e}") from None
        finally:
            self.requests.labels(cmd, code).inc()
            self.latency.labels(cmd).observe(time.perf_counter() - started)


def token_of(request: Request) -> str | None:
    """`?access_token=` (WAZIPER's way) or `Authorization: Bearer`; the daemon checks it."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("access_token") or None


def query_args(request: Request) -> dict[str, str]:
    """Query parameters except the token (WAZIPER sends it next to the arguments)."""
    return {k: v for k, v in request.query_params.items() if k != "access_token"}


async def body_args(request: Request, max_body: int) -> dict[str, Any]:
    """A JSON object or a form (urlencoded or multipart) as a map; HttpError otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise HttpError("too_large", f"the body is over {max_body} bytes", {"field": "body"})
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_body:
            raise HttpError("too_large", f"the body is over {max_body} bytes", {"field": "body"})
    if not raw.strip():
        return {}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        try:
            return dict(
                parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            )
        except (UnicodeDecodeError, ValueError):
            raise HttpError("bad_request", "the form is not valid", {"field": "body"}) from None
    if ctype == "multipart/form-data":
        return await _multipart(request, bytes(raw))
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HttpError(
            "bad_request", "the body is not valid JSON (or a form)", {"field": "body"}
        ) from None
    if not isinstance(obj, dict):
        raise HttpError("bad_request", "the body must be a JSON object", {"field": "body"})
    return obj


async def _multipart(request: Request, raw: bytes) -> dict[str, Any]:
    """Multipart forms (PHP's curl with an array body sends these): text fields only."""
    from starlette.datastructures import UploadFile

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception:  # python-multipart raises several types for broken input
        raise HttpError(
            "bad_request", "the multipart form is not valid", {"field": "body"}
        ) from None
    out: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            raise HttpError(
                "bad_request",
                f"{key}: file uploads are not accepted; give media_url",
                {"field": key},
            )
        out[key] = value
    return out
