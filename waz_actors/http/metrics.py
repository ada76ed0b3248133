"""/metrics in Prometheus' text format and /healthz.

The daemon's figures come from `daemon.metrics` (admin-only) with the token configured for the
gateway (`http.admin_token_file`), asked on each scrape; the gateway's own control requests
(count by command and code, latency histogram) are counted in its own registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from waz_actors.http.client import DaemonError
from waz_actors.http.gateway import Gateway


class DaemonFigures(Collector):
    """One scrape's answer of daemon.metrics as gauges (None: the daemon did not answer)."""

    def __init__(self, figures: dict[str, Any] | None) -> None:
        self.figures = figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        f = self.figures
        yield GaugeMetricFamily("waz_daemon_up", "1 when the daemon answered", value=1 if f else 0)
        if not f:
            return
        states = GaugeMetricFamily("waz_instances", "Instances per state", labels=["state"])
        for state, n in sorted(f.get("states", {}).items()):
            states.add_metric([state], n)
        yield states
        q = f.get("queue", {})
        yield GaugeMetricFamily("waz_queue_depth", "Queued messages", value=q.get("queued", 0))
        yield GaugeMetricFamily(
            "waz_queue_in_flight", "Messages being sent", value=q.get("in_flight", 0)
        )
        sends = GaugeMetricFamily(
            "waz_sends", "Messages by final outcome, over the live instances", labels=["outcome"]
        )
        for outcome, n in sorted(f.get("sends", {}).items()):
            sends.add_metric([outcome], n)
        yield sends
        for name, key, doc in (
            ("waz_conflicts_last_hour", "conflicts_last_hour", "440 conflicts in the window"),
            ("waz_connection_attempts", "connect_attempts", "Connection attempts since start"),
            ("waz_breaker_trips", "breaker_trips", "Circuit breaker trips since start"),
            ("waz_breakers_open", "breakers_open", "Instances whose breaker is open"),
        ):
            yield GaugeMetricFamily(name, doc, value=f.get(key, 0))
        control = GaugeMetricFamily(
            "waz_control", "The control server's counters", labels=["counter"]
        )
        for name, n in sorted(f.get("control", {}).items()):
            if isinstance(n, int | float) and not isinstance(n, bool):
                control.add_metric([name], n)
        yield control


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    figures: dict[str, Any] | None = None
    token = gw.admin_token()
    if token is not None:
        try:
            figures = await gw.call("daemon.metrics", None, token, timeout=5.0)
        except DaemonError:
            figures = None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonFigures(figures))
    body = generate_latest(registry) + generate_latest(gw.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def healthz(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    try:
        pong = await gw.call("ping", None, gw.admin_token(), timeout=2.0)
    except DaemonError as e:
        # unauthorized still proves the daemon is there and answering.
        if e.code != "unauthorized":
            return JSONResponse({"ok": False, "error": e.code}, status_code=503,
                                headers={"Retry-After": "5"})  # fmt: skip
        pong = {}
    return JSONResponse({"ok": True, "daemon": pong})


def routes() -> list[Route]:
    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
