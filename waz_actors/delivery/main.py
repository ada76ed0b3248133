"""The worker process: the delivery loop (worker.py) and its pipes to the daemon.

stdin, from the daemon: one byte per notice, `n` (events were committed: fan out), `c` (the
webhooks or the outbox changed: read it again from the start), `q` (stop); end of file (the
daemon died, even by kill -9) stops the worker too, so it never outlives its daemon. stdout, to
the daemon: a line `c` after the worker disabled a webhook (a 410), so the daemon's tap stops
writing events for it. stderr: the log, into the daemon's.

Lower CPU priority (`webhooks.worker_nice`): on a busy machine the daemon's sends come first and
deliveries take the CPU left over; they are retried and durable, a send's latency is a user's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from loguru import logger

from waz_actors.config import Config, WebhooksConfig
from waz_actors.delivery.worker import Deliverer, summary
from waz_actors.store.webhook_outbox import Outbox

if TYPE_CHECKING:
    from waz_actors.delivery.claims import WebhookClaims


def settings(cfg: Config) -> dict[str, Any]:
    """What the daemon passes to its worker (one JSON argument)."""
    return {
        "target": str(cfg.store_target),
        "webhooks": asdict(cfg.webhooks),
        "time_scale": cfg.daemon.time_scale,
        "log_level": cfg.daemon.log_level,
        # other daemons on the database change webhooks and the outbox too
        "reload_every": 5.0 if cfg.cluster.enabled else None,
        "cluster": _cluster(cfg),
    }


def _cluster(cfg: Config) -> dict[str, Any] | None:
    if not cfg.cluster.enabled:
        return None
    from waz_actors.cluster.runtime import timing_from

    return {"node_id": cfg.cluster.resolved_node_id(), "timing": asdict(timing_from(cfg))}


def command(cfg: Config) -> list[str]:
    return [sys.executable, "-m", "waz_actors.delivery", json.dumps(settings(cfg))]


async def serve(d: Deliverer, claims: WebhookClaims | None = None) -> None:
    loop = asyncio.get_running_loop()
    if claims is not None:  # a claim lost or gained: the lanes are read again
        claims.on_lost(lambda webhook_id: d.wake_threadsafe(loop))
        claims.on_gained = lambda: d.wake_threadsafe(loop)
    os.set_blocking(0, False)

    def readable() -> None:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return
        if not data or b"q" in data:  # EOF: the daemon is gone
            loop.remove_reader(0)
            d.stop()
            return
        d.wake(new=b"n" in data, changed=b"c" in data)

    def disabled(ids: list[str]) -> None:
        logger.info("webhooks disabled: {}", ", ".join(ids))
        try:
            sys.stdout.write("c\n")
            sys.stdout.flush()
        except OSError:
            pass  # the daemon is gone: stdin's end of file stops us

    d.on_disabled = disabled
    loop.add_reader(0, readable)
    loop.add_signal_handler(signal.SIGTERM, d.stop)
    loop.add_signal_handler(signal.SIGINT, d.stop)
    await d.run()


def main(argv: list[str] | None = None) -> int:
    args = json.loads((sys.argv[1:] if argv is None else argv)[0])
    logger.remove()
    logger.add(sys.stderr, level=str(args.get("log_level") or "INFO").upper())
    nice = int(args["webhooks"].get("worker_nice", 0))
    if nice:
        os.nice(nice)
    cfg = WebhooksConfig(**args["webhooks"])
    outbox = Outbox.open(args["target"])
    claims = None
    extra: dict[str, Any] = {}
    if args.get("cluster"):
        from waz_actors.cluster.lease_policy import LeaseTiming
        from waz_actors.delivery.claims import WebhookClaims

        c = args["cluster"]
        claims = WebhookClaims.open(args["target"], c["node_id"], LeaseTiming(**c["timing"]))
        extra = {
            "may_deliver": claims.may_deliver,
            "holds": claims.holds,
            "retry_claims": claims.retry,
        }
    d = Deliverer(
        outbox, cfg, float(args["time_scale"]), reload_every=args.get("reload_every"), **extra
    )
    began = time.monotonic()
    logger.info("webhook worker started (pid {}, nice {})", os.getpid(), nice)
    try:
        runner = _runner()
        with runner:
            runner.run(serve(d, claims))
    finally:
        if claims is not None:
            claims.close()  # given back: another node takes them at once
        outbox.close()
    logger.info(
        "webhook worker stopped after {:.0f} s: {}", time.monotonic() - began, summary(d.stats)
    )
    return 0


def _runner() -> asyncio.Runner:
    try:
        import uvloop  # a dependency of the HTTP gateway already; less CPU per request
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


__all__ = ["command", "main", "serve", "settings"]
