"""Cold start of `waz-actors status --json` against `python -c pass`.

Starts a real daemon (`waz-actors run`, sim driver, temporary state and runtime dirs), then runs
each command N times as a fresh subprocess and prints the median (and min, p90) wall time.
Goal: `status --json` under 150 ms, with bytecode cached as in an installed package. Also
prints the slowest imports of one run (`python -X importtime`) so a regression names its culprit.
The machine's load average is printed: other work on the host skews every figure.

    .venv/bin/python bench/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_MS = 150.0


def timed(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True)
        out.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()[-500:]}")
    return out


def summary(name: str, ms: list[float]) -> str:
    p90 = sorted(ms)[max(0, int(len(ms) * 0.9) - 1)]
    return (
        f"{name:<34} median {statistics.median(ms):7.1f} ms   min {min(ms):7.1f}   p90 {p90:7.1f}"
    )


def slowest_imports(cmd: list[str], env: dict[str, str], n: int = 8) -> list[tuple[int, str]]:
    r = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True)
    rows = []
    for line in r.stderr.decode().splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if not name.startswith("  "):  # top-level imports only: their time is cumulative
                rows.append((int(parts[1]), name.strip()))
    return sorted(rows, reverse=True)[:n]


def start_daemon(base: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable, "-m", "waz_actors", "run",
        "--state-dir", str(base / "state"), "--runtime-dir", str(base / "run"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not ((base / "run/control.sock").exists() and (base / "state/admin.token").exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the daemon did not start")
        time.sleep(0.02)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()

    base = Path(tempfile.mkdtemp(prefix="wzb", dir="/tmp"))
    daemon = start_daemon(base)
    try:
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            # An installed package has its bytecode compiled; a checkout run with
            # PYTHONDONTWRITEBYTECODE=1 would compile every module on every start. Keep the
            # bytecode in the temporary directory, not in the source tree.
            "PYTHONPYCACHEPREFIX": str(base / "pycache"),
            "WAZ_ENDPOINT": f"ipc://{base}/run/control.sock",
            "WAZ_STATE_DIR": str(base / "state"),
        }
        bare_env = {k: v for k, v in env.items() if not k.startswith("WAZ_")}
        py = sys.executable
        script = str(Path(py).with_name("waz-actors"))
        status = [py, "-m", "waz_actors", "status", "--json"]
        cmds = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import zmq, msgpack'": [py, "-c", "import zmq, msgpack"],
            "python -m waz_actors status --json": status,
        }
        if Path(script).exists():
            cmds["waz-actors status --json"] = [script, "status", "--json"]
        # The same, finding endpoint and state dir through a config file (parses the TOML).
        conf = base / "waz.toml"
        conf.write_text(f'[daemon]\nstate_dir = "{base}/state"\nruntime_dir = "{base}/run"\n')
        cmds["status --json --config FILE"] = [*status, "--config", str(conf)]
        # Warm the page cache and write the bytecode: we measure cold interpreters, not disks.
        for cmd in cmds.values():
            timed(cmd, env if "--config" not in cmd else bare_env, 2)
        results = {
            name: timed(cmd, env if "--config" not in cmd else bare_env, args.runs)
            for name, cmd in cmds.items()
        }
        print(
            f"cold start, {args.runs} runs each (python {sys.version.split()[0]},"
            f" {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f})"
        )
        for name, ms in results.items():
            print(summary(name, ms))
        base_ms = statistics.median(results["python -c pass"])
        main_ms = statistics.median(results["python -m waz_actors status --json"])
        verdict = "OK" if main_ms < GOAL_MS else "OVER GOAL"
        print(
            f"status --json: {main_ms:.1f} ms, {main_ms - base_ms:.1f} ms over a bare interpreter;"
            f" goal < {GOAL_MS:.0f} ms: {verdict}"
        )
        print("slowest top-level imports of one `status --json` (cumulative us):")
        for us, name in slowest_imports(status, env):
            print(f"  {us:>8}  {name}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
