"""The worker process: the delivery loop (worker.py) and its pipes to the daemon.

stdout, to the daemon: msgpack frames `["w", Write]`, one look's write (store/webhook_outbox.py),
which the daemon applies in its group commit and answers. stdin, from the daemon: single bytes
`n` (events were committed: fan out), `c` (the webhooks or the outbox changed: read it again
from the start), `q` (stop), and the answer to the write in flight, a line `a[events,
deliveries, [disabled webhook ids]]` or `e` (not written: kept for the next look). End of file
(the daemon died, even by kill -9) stops the worker, so it never outlives its daemon. stderr:
the log, into the daemon's.

Lower CPU priority (`webhooks.worker_nice`): on a busy machine the daemon's sends come first and
deliveries take the CPU left over; they are retried and durable, a send's latency is a user's.
The worker holds no lock the daemon waits for (it does not write the database), so a low
priority cannot turn into a stall of the daemon.
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

import msgpack
from loguru import logger

from waz_actors.config import Config, WebhooksConfig
from waz_actors.delivery.supervise import RESTARTED
from waz_actors.delivery.worker import Deliverer, summary
from waz_actors.store.webhook_outbox import Outbox, Step, Write

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


class Link:
    """The worker's end of the pipes (the module's docstring has the protocol)."""

    ANSWER_TIMEOUT = 60.0  # real seconds: a daemon that does not answer a write by then

    def __init__(self, d: Deliverer, loop: asyncio.AbstractEventLoop) -> None:
        self.d = d
        self.loop = loop
        self.buf = b""
        self.waiting: asyncio.Future[bytes] | None = None
        self.closed = False  # the daemon is gone: nobody will answer a write

    def readable(self) -> None:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return
        if not data:  # end of file: the daemon is gone
            self.loop.remove_reader(0)
            self.closed = True
            if self.waiting is not None and not self.waiting.done():
                self.waiting.set_exception(ConnectionError("the daemon is gone"))
            self.d.stop()
            return
        self.buf += data
        while self.buf:
            head = self.buf[:1]
            if head in (b"a", b"e"):
                nl = self.buf.find(b"\n")
                if nl < 0:
                    return  # the rest of the answer comes with the next read
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                if self.waiting is not None and not self.waiting.done():
                    self.waiting.set_result(line)
                continue
            self.buf = self.buf[1:]
            if head == b"q":
                self.d.stop()
            elif head in (b"n", b"c"):
                self.d.wake(new=head == b"n", changed=head == b"c")

    async def submit(self, w: Write) -> Step:
        if self.closed:
            raise ConnectionError("the daemon is gone")
        fut = self.waiting = self.loop.create_future()
        frame = msgpack.packb(["w", w.to_wire()], use_bin_type=True)
        sys.stdout.buffer.write(frame)
        sys.stdout.buffer.flush()
        async with asyncio.timeout(self.ANSWER_TIMEOUT):
            line = await fut
        if line[:1] != b"a":
            raise RuntimeError("the daemon did not write it")
        events, deliveries, disabled = json.loads(line[1:])
        return Step(int(events), int(deliveries), [str(x) for x in disabled])


async def serve(d: Deliverer, claims: WebhookClaims | None = None) -> None:
    loop = asyncio.get_running_loop()
    if claims is not None:  # a claim lost or gained: the lanes are read again
        claims.on_lost(lambda webhook_id: d.lost_threadsafe(loop, webhook_id))
        claims.on_gained = lambda: d.wake_threadsafe(loop)
    link = Link(d, loop)
    d.submit = link.submit
    d.on_disabled = lambda ids: logger.info("webhooks disabled: {}", ", ".join(ids))
    os.set_blocking(0, False)
    loop.add_reader(0, link.readable)
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
    idle = bool(args["webhooks"].get("worker_sched_idle"))
    if idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    cfg = WebhooksConfig(**args["webhooks"])
    outbox = Outbox.open(args["target"])
    claims = None
    extra: dict[str, Any] = {}
    if args.get("cluster"):
        from waz_actors.cluster.lease_policy import LeaseTiming
        from waz_actors.delivery.claims import WebhookClaims

        c = args["cluster"]
        # Started again by its daemon, which waited for the previous worker to exit: that one
        # is dead, so its claims (this node's) are taken back now, not after the ttl.
        again = os.environ.get(RESTARTED) == "1"
        claims = WebhookClaims.open(
            args["target"], c["node_id"], LeaseTiming(**c["timing"]), take_back=again
        )
        extra = {
            "may_deliver": claims.may_deliver,
            "holds": claims.holds,
            "retry_claims": claims.retry,
            "fence": claims.fence,
        }
    d = Deliverer(
        outbox, cfg, float(args["time_scale"]), reload_every=args.get("reload_every"), **extra
    )
    began = time.monotonic()
    logger.info(
        "webhook worker started (pid {}, nice {}{})",
        os.getpid(),
        nice,
        ", SCHED_IDLE" if idle else "",
    )
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
