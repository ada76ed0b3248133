"""The demo the README's first command runs: three sim instances that connect, send, and
ride out injected conflicts and disconnects while the log shows it."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loguru import logger

from waz_actors.config import Config, InstanceConfig

if TYPE_CHECKING:
    from waz_actors.app.runtime import Daemon

DEMO_IDS = ("demo-1", "demo-2", "demo-3")
DEMO_HTTP_LISTEN = "127.0.0.1:8000"


def demo_config(cfg: Config) -> Config:
    """Add demo instances and shorten durations so something happens every few seconds."""
    have = {i.id for i in cfg.instances}
    extra = tuple(
        InstanceConfig(id=i, driver="sim", tenant="demo") for i in DEMO_IDS if i not in have
    )
    scale = cfg.daemon.time_scale if cfg.daemon.time_scale != 1.0 else 0.05
    # The HTTP gateway on the seeds' port, with a driver the demo has (docs/http.md).
    http = cfg.http
    if not http.listen:
        http = dataclasses.replace(http, listen=DEMO_HTTP_LISTEN, create_driver="sim")
    return dataclasses.replace(
        cfg,
        instances=cfg.instances + extra,
        daemon=dataclasses.replace(cfg.daemon, time_scale=scale, demo=True),
        http=http,
    )


class DemoTraffic:
    """Sends a message to a demo instance every so often and injects a fault now and then."""

    def __init__(self, daemon: Daemon, interval: float = 1.0, seed: int = 7) -> None:
        self.daemon = daemon
        self.interval = interval
        self.rand = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waz-demo", daemon=True)
        self.sent = 0

    def start(self) -> None:
        self._unsub = self.daemon.bus.subscribe("message.", self._on_status)
        logger.info(
            "demo: 3 simulated numbers; a message every {:g} s, a conflict or disconnect "
            "every few seconds; Ctrl-C drains and stops",
            self.interval,
        )
        if self.daemon.cfg.http.listen:
            logger.info(
                "demo: dashboard at http://{}/ (sign in with the token of "
                "`waz-actors token create demo`)",
                self.daemon.cfg.http.listen,
            )
        self._thread.start()

    @staticmethod
    def _on_status(topic: str, body: Mapping[str, Any]) -> None:
        if body.get("status") in ("sent", "failed"):
            logger.bind(instance=body["instance_id"]).info(
                "demo: {} {} ({})", body["status"], body["message_id"], body.get("reason", "")
            )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if hasattr(self, "_unsub"):
            self._unsub()

    def _run(self) -> None:
        from waz_actors.actors.fleet import accept_message
        from waz_actors.errors import WazError

        fleet = self.daemon.fleet
        assert fleet is not None, "the demo starts after the daemon"
        tick = 0
        while not self._stop.wait(self.interval):
            tick += 1
            iid = self.rand.choice(DEMO_IDS)
            try:
                rec, _ = accept_message(
                    fleet,
                    instance_id=iid,
                    tenant="demo",
                    to="6281234567890",
                    text=f"demo message {tick}",
                ).result(10)
                logger.bind(instance=iid).info("demo: queued {}", rec.message_id)
            except WazError as e:
                logger.bind(instance=iid).warning("demo: not queued: {}", e.message)
            if tick % 6 == 0:
                victim = self.rand.choice(DEMO_IDS)
                kind = self.rand.choice(["conflict", "disconnect"])
                logger.bind(instance=victim).warning("demo: injecting a {}", kind)
                try:
                    fleet.sim_fault(victim, kind, {})
                except WazError as e:
                    logger.warning("demo: fault not injected: {}", e.message)
            if tick % 10 == 0:
                st = fleet.status()
                logger.info(
                    "demo: states {} | sent {} failed {} queued {} | conflicts/h {}",
                    {k: v for k, v in st["states"].items() if v},
                    st["queue"]["sent"],
                    st["queue"]["failed"],
                    st["queue"]["queued"],
                    st["conflicts_last_hour"],
                )
