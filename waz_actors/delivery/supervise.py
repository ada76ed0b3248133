"""The daemon's side of the delivery worker: spawn it, wake it, write for it, start it again
if it dies.

Wake-ups are single bytes down the worker's stdin (main.py has the protocol), written without
blocking from the store's writer thread after a commit: a full pipe means the worker has notices
enough to read, and a lost notice only delays a look until the worker's poll_interval. The
worker's writes (stdout) are read by a thread of this side, applied by the store's group commit
(`apply`, which waits for the commit) and answered down stdin.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
from loguru import logger

from waz_actors.store.webhook_outbox import Step, Write

BACKOFF_INITIAL = 0.2  # real seconds before the first restart ...
BACKOFF_MAX = 30.0  # ... doubling up to this
STABLE_AFTER = 30.0  # a worker up this long starts again from the first step
RESTARTED = "WAZ_DELIVERY_RESTARTED"  # "1" in the environment of a worker started again


class DeliveryProcess:
    def __init__(self, command: list[str], apply: Callable[[Write], Step]) -> None:
        self.command = command
        self.apply = apply
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._fd: int | None = None
        self._stop = threading.Event()
        # Started at the first sign of a webhook (one in the store at start-up, a change of
        # the webhooks, an event written): a daemon without webhooks runs no worker.
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="waz-delivery", daemon=True)

    @property
    def pid(self) -> int | None:
        proc = self.proc
        return None if proc is None else proc.pid

    def start(self) -> None:
        self._thread.start()

    def want(self) -> None:
        """Run the worker (from now on, until stop)."""
        self._wanted.set()

    def _spawn(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            # stderr inherited: the worker's log lines land in the daemon's journal.
            # A start after the first follows proc.wait(): the worker before is dead, and the
            # new one may take its cluster claims back at once (delivery/main.py).
            env = {**os.environ, RESTARTED: "1" if self.starts else "0"}
            proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            assert proc.stdin is not None
            os.set_blocking(proc.stdin.fileno(), False)
            self.proc, self._fd = proc, proc.stdin.fileno()
            self.starts += 1
        threading.Thread(target=self._read, args=(proc,), name="waz-delivery-out").start()
        logger.info("webhook worker started (pid {})", proc.pid)

    def notify(self, what: bytes) -> None:
        """b"n": events committed; b"c": webhooks or the outbox changed. Never blocks."""
        if not self._wanted.is_set():
            self._wanted.set()
        fd = self._fd
        if fd is None:
            return  # not started yet (it is now), or being started again: it reads the store
        try:
            os.write(fd, what)
        except (BlockingIOError, BrokenPipeError, OSError):
            pass  # full: the worker has notices to read; gone: it is being started again

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        frames = msgpack.Unpacker(raw=False, max_buffer_size=64 * 1024 * 1024)
        while True:
            data = os.read(fd, 65536)
            if not data:
                return  # the worker is gone
            frames.feed(data)
            for msg in frames:
                if isinstance(msg, list) and msg and msg[0] == "w":
                    self._answer(self._write(msg[1]))

    def _write(self, wire: Any) -> bytes:
        try:
            step = self.apply(Write.from_wire(wire))
        except Exception as e:  # the worker keeps them for its next look
            logger.warning("webhooks: a write of the worker failed: {}", e)
            return b"e\n"
        return b"a" + json.dumps([step.events, step.deliveries, step.disabled]).encode() + b"\n"

    def _answer(self, line: bytes) -> None:
        """Down the non-blocking pipe, whole (a line is shorter than PIPE_BUF: one write)."""
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            fd = self._fd
            if fd is None:
                return
            try:
                os.write(fd, line)
                return
            except BlockingIOError:
                select.select([], [fd], [], 0.5)
            except OSError:
                return  # the worker is gone; its successor plans again

    def _run(self) -> None:
        self._wanted.wait()  # stop() sets it too
        if self._stop.is_set():
            return
        try:
            self._spawn()
        except OSError as e:
            logger.error("webhook worker cannot start: {}", e)
            return
        delay = BACKOFF_INITIAL
        while not self._stop.is_set():
            proc = self.proc
            if proc is None:
                return  # stopped before it started
            began = time.monotonic()
            code = proc.wait()
            if self._stop.is_set():
                return
            if time.monotonic() - began > STABLE_AFTER:
                delay = BACKOFF_INITIAL
            logger.error("webhook worker exited with {}; starting it again in {:g} s", code, delay)
            with self._lock:
                self._close_pipe(proc)
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                self._spawn()
            except OSError as e:
                logger.error("webhook worker cannot start: {}", e)

    def _close_pipe(self, proc: subprocess.Popen[bytes]) -> None:
        self._fd = None
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the worker to stop: it writes what it has done (this side still answers) and
        exits; killed if it has not after `timeout`."""
        self._stop.set()
        self._wanted.set()  # a worker never started: the supervising thread ends now
        with self._lock:
            proc = self.proc
        if proc is not None and proc.poll() is None:
            self.notify(b"q")
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc is not None:
            with self._lock:
                self._close_pipe(proc)
        if self._thread.is_alive():
            self._thread.join(timeout)


__all__ = ["RESTARTED", "DeliveryProcess"]
