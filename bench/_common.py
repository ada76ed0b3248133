"""Shared plumbing for the benchmarks: daemon subprocesses, configs, /proc readings, percentiles.

The benchmarks drive the daemon the way an operator does (a real `waz-actors run` process, the
control socket, the event socket), so everything here is about processes and files, not internals.
"""

from __future__ import annotations

import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from waz_actors.control.client import Client, ClientError, Unreachable  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- numbers ----------------------------------------------------------------------------------


def pct(values: Iterable[float], q: float) -> float | None:
    """The q-quantile (nearest rank); None for no values, so an empty run never prints a 0."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "n/a"
    if theirs == 0:
        return "=" if ours == 0 else "inf"
    return f"{ours / theirs:.2f}x"


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `pred` until it is truthy; raise TimeoutError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --- machine and processes --------------------------------------------------------------------


def machine_line() -> str:
    """nproc, memory, CPU model and Python version: printed with every figure."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU(s), {mem_gib:.1f} GiB RAM, {model}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


@dataclass(frozen=True)
class ProcSample:
    rss_mib: float
    threads: int
    cpu_seconds: float  # utime + stime


def proc_sample(pid: int) -> ProcSample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib, threads = 0, 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    # Field 2 (comm) may contain spaces: split after its closing parenthesis.
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])
    return ProcSample(rss_kib / 1024, threads, (utime + stime) / CLK_TCK)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- config -----------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def config_toml(
    sections: Mapping[str, Mapping[str, Any]], instances: Iterable[Mapping[str, Any]] = ()
) -> str:
    """A daemon config file: `{"daemon": {...}, "queue": {...}}` plus `[[instances]]` tables."""
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in values.items()]
        lines.append("")
    for inst in instances:
        lines.append("[[instances]]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in inst.items()]
    return "\n".join(lines) + "\n"


# --- the daemon as a subprocess ---------------------------------------------------------------


class DaemonProcess:
    """One `waz-actors run` subprocess on fixed state/runtime dirs; can be killed and restarted."""

    def __init__(self, config_path: Path, state_dir: Path, runtime_dir: Path) -> None:
        self.config_path = config_path
        self.state_dir = state_dir
        self.runtime_dir = runtime_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path = state_dir.parent / "daemon.log"

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.runtime_dir.resolve()}/control.sock"

    @property
    def events_endpoint(self) -> str:
        return f"ipc://{self.runtime_dir.resolve()}/events.sock"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("daemon not started")
        return self.proc.pid

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("daemon already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "waz_actors",
            "run",
            "--config",
            str(self.config_path),
            "--state-dir",
            str(self.state_dir),
            "--runtime-dir",
            str(self.runtime_dir),
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()
        self.starts += 1

    def token(self) -> str:
        return (self.state_dir / "admin.token").read_text().strip()

    def wait_ready(self, timeout: float = 30.0) -> Client:
        """Wait until the control socket answers a ping; return an admin client."""

        def ready() -> Client | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"daemon exited with {self.proc.returncode}; log tail:\n{self.log_tail()}"
                )
            try:
                client = Client(self.endpoint, self.token(), timeout=1.0, retries=0)
                client.ping()
                return client
            except (OSError, Unreachable, ClientError):
                return None

        return wait_until(ready, timeout, "the daemon's control socket", interval=0.02)

    def kill9(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def call_retrying(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """Call `fn` until it stops raising Unreachable/`shutting_down`/`busy` (a daemon restarting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Unreachable:
            pass
        except ClientError as e:
            if e.code not in ("shutting_down", "busy"):
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s: {what}")
        time.sleep(0.02)
