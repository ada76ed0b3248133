"""Run the real `waz-actors run` in a subprocess with a fake systemd notify socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from waz_actors.control.client import Client


class NotifyListener:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cv:
                for line in data.decode().splitlines():
                    self.messages.append((time.monotonic(), line))
                self._cv.notify_all()

    def lines(self, prefix: str = "") -> list[str]:
        with self._cv:
            return [m for _, m in self.messages if m.startswith(prefix)]

    def times(self, line: str) -> list[float]:
        with self._cv:
            return [t for t, m in self.messages if m == line]

    def wait_for(self, line: str, count: int = 1, timeout: float = 20.0) -> float:
        """Waits until `line` was received `count` times; returns the time of that one."""
        with self._cv:
            ok = self._cv.wait_for(
                lambda: sum(1 for _, m in self.messages if m == line) >= count, timeout
            )
            if not ok:
                raise AssertionError(f"no {line!r} (x{count}) within {timeout} s: {self.messages}")
            return [t for t, m in self.messages if m == line][count - 1]

    def close(self) -> None:
        self._stop = True
        self.sock.close()


class DaemonProc:
    _seq = 0

    def __init__(self, tmp: Path, config_text: str, *, watchdog_usec: int | None = 600_000):
        DaemonProc._seq += 1
        n = DaemonProc._seq
        self.tmp = tmp
        self.config = tmp / "waz.toml"
        self.config.write_text(config_text)
        self.state = tmp / "state"
        self.run_dir = tmp / "run"
        self.notify = NotifyListener(tmp / f"notify-{n}.sock")
        self.log = tmp / f"daemon-{n}.log"
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = str(self.notify.path)
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        env.pop("WATCHDOG_PID", None)
        self._logf = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waz_actors",
                "run",
                "--config",
                str(self.config),
                "--state-dir",
                str(self.state),
                "--runtime-dir",
                str(self.run_dir),
            ],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.endpoint = f"ipc://{self.run_dir.resolve()}/control.sock"

    def client(self, timeout: float = 5.0) -> Client:
        token = (self.state / "admin.token").read_text().strip()
        return Client(self.endpoint, token, timeout=timeout)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        self._logf.flush()
        return self.log.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._logf.close()
        self.notify.close()


def config_text(instances: list[str], *, extra: str = "", time_scale: float = 0.01) -> str:
    out = [
        "[daemon]",
        f"time_scale = {time_scale}",
        "connect_rate = 1000.0",
        "health_sweep = 20.0",
        "shutdown_timeout = 20.0",
        "[connection]",
        "timeout = 500.0",
        "keepalive = 200.0",
        "[queue]",
        "processing_timeout = 500.0",
        extra,
    ]
    for iid in instances:
        out += ["[[instances]]", f'id = "{iid}"', 'tenant = "t1"']
    return "\n".join(out) + "\n"
