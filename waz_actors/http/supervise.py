"""The daemon's side: run the gateway as a real subprocess and start it again if it dies.

A subprocess, not a thread, so an HTTP flood or a bug in the web stack never shares the
daemon's GIL or takes the daemon down, and the same program runs alone on another host.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from loguru import logger

from waz_actors.config import Config

BACKOFF_INITIAL = 0.5  # real seconds before the first restart ...
BACKOFF_MAX = 30.0  # ... doubling up to this
STABLE_AFTER = 30.0  # a gateway up this long starts again from the first step


def gateway_command(cfg: Config) -> list[str]:
    h = cfg.http
    cmd = [
        sys.executable, "-m", "waz_actors", "http",
        "--listen", h.listen,
        "--endpoint", h.control_endpoint or cfg.control_endpoint,
        "--admin-token-file", h.admin_token_file or str(cfg.state_dir.resolve() / "admin.token"),
        "--timeout", str(h.request_timeout),
        "--max-body", str(h.max_body),
        "--create-driver", h.create_driver,
    ]  # fmt: skip
    if h.curve_server_public_key_file and h.curve_client_secret_key_file:
        cmd += ["--curve-server-key", h.curve_server_public_key_file]
        cmd += ["--curve-client-key", h.curve_client_secret_key_file]
    return cmd


class GatewayProcess:
    def __init__(self, cfg: Config) -> None:
        self.command = gateway_command(cfg)
        self.listen = cfg.http.listen
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="waz-http", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            # stdout/stderr inherited: the gateway's lines land in the daemon's journal.
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL)
            self.starts += 1
        logger.info("http gateway on {} started (pid {})", self.listen, self.proc.pid)

    def _run(self) -> None:
        delay = BACKOFF_INITIAL
        while not self._stop.is_set():
            proc = self.proc
            assert proc is not None
            began = time.monotonic()
            code = proc.wait()
            if self._stop.is_set():
                return
            if time.monotonic() - began > STABLE_AFTER:
                delay = BACKOFF_INITIAL
            logger.error("http gateway exited with {}; starting it again in {:g} s", code, delay)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                self._spawn()
            except OSError as e:
                logger.error("http gateway cannot start: {}", e)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._thread.is_alive():
            self._thread.join(timeout)
