"""Assembles the gateway: the route modules, the JSON error pages, start and stop."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from waz_actors.http import compat, metrics, pages, rest
from waz_actors.http.errors import error_response
from waz_actors.http.gateway import Gateway, Settings
from waz_actors.http.openapi import document


def build_app(settings: Settings, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """`extra_routes`: a later module (the dashboard) adds its pages, ahead of `/` and `/docs`."""
    gw = Gateway(settings)
    spec = document()

    async def openapi(_request: Request) -> Response:
        return JSONResponse(spec)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "bad_request"}.get(exc.status_code, "bad_request")
        detail = "no such route" if exc.status_code == 404 else str(exc.detail)
        return error_response(code, detail, {}, status=exc.status_code)

    async def internal(request: Request, exc: Exception) -> Response:
        # uvicorn's error logger: configured by uvicorn, lands in the journal with the rest.
        logging.getLogger("uvicorn.error").error(
            "%s %s failed", request.method, request.url.path, exc_info=exc
        )
        return error_response("internal", "the gateway failed; it logged the error")

    routes: list[BaseRoute] = [  # API first: the hot paths match after fewer tries
        *rest.routes(gw),
        *compat.routes(gw),
        *metrics.routes(),
        Route("/openapi.json", openapi, methods=["GET"]),
        *(extra_routes or []),  # ahead of the placeholder pages, so a dashboard can take "/"
        *pages.routes(),
    ]
    handlers: dict[Any, Any] = {HTTPException: http_error, Exception: internal}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.state.gateway = gw
    return app
