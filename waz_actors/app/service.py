"""`serve()`: the daemon as a service — signals, systemd notify and watchdog, reload."""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from loguru import logger

from waz_actors.app.notify import Notifier
from waz_actors.app.runtime import Daemon
from waz_actors.config import Config

if TYPE_CHECKING:
    from waz_actors.app.demo import DemoTraffic


def serve(
    cfg: Config, *, config_path: str | None = None, overrides: dict[str, Any] | None = None
) -> int:
    from waz_actors.app.logs import setup_logging

    setup_logging(cfg.daemon.log_level, cfg.daemon.log_format)
    # Driver-host subprocesses must not inherit the notify socket (NotifyAccess=main).
    notifier = Notifier.from_env(unset_environment=True)
    daemon = Daemon(cfg)
    daemon.start()
    svc = Service(daemon, notifier, config_path=config_path, overrides=overrides or {})
    return svc.loop()


class Service:
    def __init__(
        self,
        daemon: Daemon,
        notifier: Notifier,
        *,
        config_path: str | None,
        overrides: dict[str, Any],
    ) -> None:
        self.daemon = daemon
        self.notifier = notifier
        self.config_path = config_path
        self.overrides = overrides
        self.stop_requested = threading.Event()
        self.reload_requested = threading.Event()
        self.wake = threading.Event()
        self.demo: DemoTraffic | None = None
        self._last_status = ""

    def _install_signals(self) -> None:
        def on_stop(signum: int, _frame: object) -> None:
            self.stop_requested.set()
            self.wake.set()

        def on_hup(_signum: int, _frame: object) -> None:
            self.reload_requested.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)
        from waz_actors.app.stacks import install_sigusr1

        install_sigusr1(logger)

    def loop(self) -> int:
        self._install_signals()
        d = self.daemon
        self._wait_control_ready()
        if d.cfg.daemon.demo:
            from waz_actors.app.demo import DemoTraffic

            self.demo = DemoTraffic(d)
            self.demo.start()
        self.notifier.ready()
        self._status()
        wd = self.notifier.watchdog_interval()
        tick = 1.0 if wd is None else max(0.05, min(1.0, wd / 3))
        while not self.stop_requested.is_set():
            self.wake.wait(tick)
            self.wake.clear()
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self._reload()
            if wd is not None and self._healthy():
                self.notifier.watchdog()
            self._status()
        self.notifier.stopping()
        timeout = d.cfg.daemon.shutdown_timeout
        self.notifier.extend_timeout(timeout + 10)
        if self.demo is not None:
            self.demo.stop()
        d.stop(timeout)
        return 0

    def _healthy(self) -> bool:
        """WATCHDOG=1 only while the supervisor answers and its sweeps keep coming."""
        d = self.daemon
        if d.fleet is None or not d.fleet.supervisor_alive(timeout=1.0):
            logger.error("watchdog: the supervisor does not answer")
            return False
        sweep_every = d.cfg.daemon.health_sweep * d.cfg.daemon.time_scale
        last = d.sweep.last_sweep or d.fleet.started_at_monotonic
        if time.monotonic() - last > 2 * sweep_every + 5:
            logger.error("watchdog: no health sweep for {:.0f} s", time.monotonic() - last)
            return False
        return True

    def _status(self) -> None:
        d = self.daemon
        if d.fleet is None:
            return
        # Clustered, the systemd status line is this node's (and reads no database each tick).
        st = d.fleet.status(here=True)
        states = ", ".join(f"{v} {k}" for k, v in st["states"].items() if v) or "no instances"
        q = st["queue"]
        line = f"{states}; queued {q['queued']}, sent {q['sent']}, failed {q['failed']}"
        if line != self._last_status:
            self._last_status = line
            self.notifier.status(line)

    def _wait_control_ready(self) -> None:
        """READY=1 only once the control socket really answers a ping."""
        d = self.daemon
        if d.control is None:
            return
        from waz_actors.control.client import Client

        token = (d.cfg.state_dir / "admin.token").read_text().strip()
        deadline = time.monotonic() + 30
        with Client(d.cfg.control_endpoint, token, timeout=1.0) as c:
            while True:
                try:
                    c.ping()
                    return
                except Exception as e:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"control socket does not answer: {e}") from e

    def _reload(self) -> None:
        from waz_actors.app.reload import reload_config

        self.notifier.reloading()
        try:
            reload_config(self.daemon, self.config_path, self.overrides)
        except Exception as e:
            logger.error("reload rejected, the running config stays: {}", e)
        finally:
            self.notifier.ready()
