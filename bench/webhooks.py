"""Webhooks: delivery rate to a local receiver, and what busy webhooks cost the send path.

    .venv/bin/python bench/webhooks.py [--instances 20] [--deliveries 9000] [--messages 5000]
                                       [--pairs 2] [--window 2000] [--compare-nice 19]
                                       [--compare-idle] [--streams-receiver] [--json]
    .venv/bin/python bench/webhooks.py --latency [--hogs 2] [--compare-nice 19]

Each case is a real `waz-actors run` subprocess (sim network, time_scale 1) and a receiver in
a subprocess of its own (HTTP/1.1 keep-alive, answers 204), so neither shares a GIL with the
daemon:

  delivery  1, 10 and 100 webhooks subscribed to message.status; enough messages that about
            --deliveries deliveries are due (each message makes queued, sending, sent per
            webhook); the figure is deliveries/s from the first send to the moment SQLite holds
            every delivery as `delivered`.
  dispatch  the `bench/scale.py --skip-fleet` dispatch measure (--messages sends pipelined over
            one DEALER, durable sends/s until every message is `sent`), in pairs in the same
            invocation: with no webhook, then with 10 webhooks subscribed to everything and
            delivering while the sends go on (--pairs times, alternating, so a change in the
            machine's load hits both sides). Goal: webhooks cost under 10 % of the send rate
            (the median of the pairs' costs). The CPU per send of the daemon, of its delivery
            worker and of the receiver (/proc/<pid>/stat) while the sends go on is printed
            apart: the receiver stands for the panel's server, on another machine in
            production, and here takes CPU from the daemon on the same 2 cores.
  latency   (--latency) delivery latency with the worker at nice 10, at nice 19 and under
            SCHED_IDLE, with and without --hogs busy loops.

The receiver is bench/hook_receiver.py: an asyncio.Protocol since 2026-12 (the asyncio-streams
one before it cost more CPU per request on the shared cores; `--streams-receiver` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DaemonProcess, config_toml, fmt, free_port, machine_line, wait_until
from scale import _count_sent, pipelined_sends

# The receiver (bench/hook_receiver.py): an asyncio.Protocol answering 204, in a process of its
# own; `--streams-receiver` runs the earlier asyncio-streams one (see that file's docstring).
RECEIVER = str(Path(__file__).resolve().parent / "hook_receiver.py")


def _receiver(
    port: int, *args: str, nice: int = 0, streams: bool = False
) -> subprocess.Popen[bytes]:
    prefix = ["nice", "-n", str(nice)] if nice else []
    extra = ["--streams"] if streams else []
    return subprocess.Popen([*prefix, sys.executable, RECEIVER, str(port), *args, *extra])


def _one(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _workers(pid: int) -> list[int]:
    """The daemon's delivery worker process(es)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                if b"waz_actors.delivery" in Path(f"/proc/{child}/cmdline").read_bytes():
                    out.append(int(child))
            except FileNotFoundError:
                continue
    return out


def _delivered(db: Path) -> int:
    return _one(db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")


def run_case(
    work: Path,
    name: str,
    *,
    instances: int,
    messages: int,
    hooks: int,
    events: list[str],
    wait_deliveries: bool,
    window: int,
    timeout: float,
    receiver_nice: int = 0,
    sched_idle: bool = False,
    worker_nice: int = 10,
    streams_receiver: bool = False,
) -> dict[str, Any]:
    port = free_port()
    receiver = _receiver(port, nice=receiver_nice, streams=streams_receiver)
    cfg = work / f"{name}.toml"
    cfg.write_text(
        config_toml(
            {
                "daemon": {"connect_rate": 2000.0, "log_level": "WARNING"},
                "queue": {"pacing_interval": 0.0, "max_size": max(1000, 2 * messages)},
                "sim": {"send_latency": 0.0},
                "control": {"max_inflight": max(20000, window * 2)},
                "webhooks": {
                    "allow_private_targets": True,
                    "worker_sched_idle": sched_idle,
                    "worker_nice": worker_nice,
                },
            },
            [{"id": f"d{n:04d}", "driver": "sim", "tenant": "bench"} for n in range(instances)],
        )
    )
    daemon = DaemonProcess(cfg, work / f"{name}-state", work / f"{name}-run")
    daemon.start()
    out: dict[str, Any] = {"webhooks": hooks, "messages": messages, "instances": instances}
    try:
        client = daemon.wait_ready(timeout)
        client.timeout = 30.0
        for _ in range(hooks):
            client.webhook_create(f"http://127.0.0.1:{port}/hook", events, tenant="bench")
        wait_until(
            lambda: client.daemon_status()["states"].get("online", 0) == instances,
            timeout,
            "instances online",
            interval=0.05,
        )
        db = daemon.state_dir / "waz.db"
        targets = [f"d{n % instances:04d}" for n in range(messages)]
        workers = _workers(daemon.pid)
        done0 = _delivered(db) if hooks else 0  # instance.state events, before the sends
        cpu0 = _cpu(daemon.pid), sum(_cpu(w) for w in workers), _cpu(receiver.pid)
        t0 = time.monotonic()
        accepted, errors = pipelined_sends(
            daemon.endpoint, daemon.token(), targets, window, timeout
        )
        out["errors"] = len(errors)
        wait_until(lambda: _count_sent(db) >= len(accepted), timeout, "every message sent", 0.01)
        t_sent = time.monotonic()
        cpu1 = _cpu(daemon.pid), sum(_cpu(w) for w in workers), _cpu(receiver.pid)
        out["durable_sends_per_s"] = len(accepted) / (t_sent - t0)
        # CPU per send, load-independent: the daemon's, and its delivery worker's meanwhile
        out["daemon_cpu_us_per_send"] = 1e6 * (cpu1[0] - cpu0[0]) / len(accepted)
        out["worker_cpu_us_per_send"] = 1e6 * (cpu1[1] - cpu0[1]) / len(accepted)
        out["deliveries_done_at_sent"] = done = _delivered(db) if hooks else 0
        # the receiver stands for the panel's server (another machine in production)
        out["receiver_cpu_us_per_send"] = 1e6 * (cpu1[2] - cpu0[2]) / len(accepted)
        n = done - done0
        out["receiver_cpu_us_per_delivery"] = 1e6 * (cpu1[2] - cpu0[2]) / n if n > 0 else None
        out["worker_cpu_us_per_delivery"] = 1e6 * (cpu1[1] - cpu0[1]) / n if n > 0 else None
        if wait_deliveries:
            # every webhook wants every event (message.status of its tenant, all after it)
            events = _one(db, "SELECT count(*) FROM webhook_events")
            total = events * hooks
            out["deliveries"] = total
            wait_until(lambda: _delivered(db) >= total, timeout, "every delivery done", 0.02)
            out["deliveries_per_s"] = total / (time.monotonic() - t0)
        client.close()
        daemon.stop(60)
    finally:
        if daemon.alive():
            daemon.kill9()
        receiver.kill()
        receiver.wait(10)
    return out


HOG = "while True: pass"


def run_latency(
    work: Path,
    name: str,
    *,
    sched_idle: bool,
    rate: float,
    seconds: float,
    hogs: int,
    worker_nice: int = 10,
    streams_receiver: bool = False,
) -> dict[str, Any]:
    """Delivery latency when the worker is NOT saturated: 2 webhooks on message.status,
    `rate` sends/s for `seconds`, and `hogs` busy loops at nice 0 (a machine busy with other
    work); latency = the receiver's arrival time minus the event's `time`."""
    port = free_port()
    log = work / f"{name}.lat"
    receiver = _receiver(port, str(log), streams=streams_receiver)
    cfg = work / f"{name}.toml"
    cfg.write_text(
        config_toml(
            {
                "daemon": {"log_level": "WARNING"},
                "queue": {"pacing_interval": 0.0, "max_size": 10000},
                "sim": {"send_latency": 0.0},
                "webhooks": {
                    "allow_private_targets": True,
                    "worker_sched_idle": sched_idle,
                    "worker_nice": worker_nice,
                },
            },
            [{"id": "d0", "driver": "sim", "tenant": "bench"}],
        )
    )
    daemon = DaemonProcess(cfg, work / f"{name}-state", work / f"{name}-run")
    daemon.start()
    hogging: list[subprocess.Popen[bytes]] = []
    try:
        client = daemon.wait_ready(60)
        for _ in range(2):
            client.webhook_create(f"http://127.0.0.1:{port}/hook", ["message.status"])
        wait_until(lambda: client.daemon_status()["states"].get("online", 0) == 1, 60, "online")
        hogging = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
        n = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(n):
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            client.message_send("d0", "5511999999999", text=f"m{i}")
        want = n * 3 * 2
        lines = lambda: log.read_text().split() if log.exists() else []  # noqa: E731
        wait_until(lambda: len(lines()) >= want, 600, "every delivery", 0.05)
        lat = sorted(float(x) for x in lines())
        client.close()
        daemon.stop(60)
    finally:
        for h in hogging:
            h.kill()
            h.wait(10)
        if daemon.alive():
            daemon.kill9()
        receiver.kill()
        receiver.wait(10)
    return {
        "sched_idle": sched_idle,
        "worker_nice": worker_nice,
        "hogs": hogs,
        "deliveries": len(lat),
        "p50_ms": 1e3 * lat[len(lat) // 2],
        "p99_ms": 1e3 * lat[int(len(lat) * 0.99)],
        "max_ms": 1e3 * lat[-1],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--instances", type=int, default=20)
    p.add_argument("--deliveries", type=int, default=9000)
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--pairs", type=int, default=2)
    # The receiver stands for the panel's server, on another machine in production; on a small
    # shared box its CPU competes with the daemon's. Report with 0 (the default) and with 19.
    p.add_argument("--receiver-nice", type=int, default=0)
    p.add_argument("--window", type=int, default=2000)
    p.add_argument("--timeout", type=float, default=600.0)
    # Also the pairs' busy side under SCHED_IDLE (webhooks.worker_sched_idle), alternating.
    p.add_argument("--compare-idle", action="store_true")
    # Also the pairs' busy side with the worker at this nice (webhooks.worker_nice; default 10).
    p.add_argument("--compare-nice", type=int)
    # The earlier asyncio-streams receiver instead of the asyncio.Protocol one.
    p.add_argument("--streams-receiver", action="store_true")
    # Only the latency case (nice 10, nice --compare-nice or 19, SCHED_IDLE; with and without
    # --hogs busy loops).
    p.add_argument("--latency", action="store_true")
    p.add_argument("--hogs", type=int, default=2)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.latency:
        print(machine_line())
        other = 19 if a.compare_nice is None else a.compare_nice
        with tempfile.TemporaryDirectory(prefix="wzwh", dir="/tmp") as tmp:
            for hogs in (0, a.hogs):
                for nice, idle in ((10, False), (other, False), (10, True)):
                    r = run_latency(
                        Path(tmp), f"lat-{hogs}-{nice}-{int(idle)}", sched_idle=idle, rate=20.0,
                        seconds=10.0, hogs=hogs, worker_nice=nice,
                        streams_receiver=a.streams_receiver,
                    )  # fmt: skip
                    print(
                        f"  {'SCHED_IDLE' if idle else f'nice {nice}':>10}, {hogs} busy loops:"
                        f" {r['deliveries']} deliveries, latency p50 {r['p50_ms']:.0f} ms,"
                        f" p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms"
                        f" (load {os.getloadavg()[0]:.2f})"
                    )
        return 0
    res: dict[str, Any] = {"machine": machine_line(), "delivery": [], "dispatch": []}
    with tempfile.TemporaryDirectory(prefix="wzwh", dir="/tmp") as tmp:
        work = Path(tmp)
        for hooks in (1, 10, 100):
            messages = max(a.instances, a.deliveries // (3 * hooks))
            res["delivery"].append(
                run_case(
                    work, f"d{hooks}", instances=a.instances, messages=messages, hooks=hooks,
                    events=["message.status"], wait_deliveries=True, window=a.window,
                    timeout=a.timeout, streams_receiver=a.streams_receiver,
                )
            )  # fmt: skip
        # (label, webhooks, SCHED_IDLE, worker nice)
        sides = [("without", 0, False, 10), ("with_10_busy", 10, False, 10)]
        if a.compare_idle:
            sides.append(("with_10_idle", 10, True, 10))
        if a.compare_nice is not None:
            sides.append((f"with_10_nice{a.compare_nice}", 10, False, a.compare_nice))
        for n in range(a.pairs):
            pair: dict[str, Any] = {"costs": {}}
            for label, hooks, idle, nice in sides:
                pair[label] = run_case(
                    work, f"s{n}-{label}", instances=a.instances, messages=a.messages,
                    hooks=hooks, events=["*"], wait_deliveries=False, window=a.window,
                    timeout=a.timeout, receiver_nice=a.receiver_nice, sched_idle=idle,
                    worker_nice=nice, streams_receiver=a.streams_receiver,
                )  # fmt: skip
                pair[label]["load"] = os.getloadavg()[0]
            base = pair["without"]["durable_sends_per_s"]
            for label, *_ in sides[1:]:
                busy = pair[label]["durable_sends_per_s"]
                pair["costs"][label] = 100.0 * (base - busy) / base
            pair["cost_pct"] = pair["costs"]["with_10_busy"]
            res["dispatch"].append(pair)
    res["send_rate_cost_pct"] = statistics.median(p["cost_pct"] for p in res["dispatch"])
    if a.json:
        print(json.dumps(res, indent=2))
        return 0
    print(res["machine"])
    print("deliveries/s to one local receiver (message.status; 3 per message per webhook)")
    for row in res["delivery"]:
        print(
            f"  {row['webhooks']:>3} webhooks: {fmt(row['deliveries_per_s'], 0)} deliveries/s"
            f" ({row['deliveries']} deliveries, {row['messages']} messages)"
        )
    kind = "asyncio streams" if a.streams_receiver else "asyncio.Protocol"
    print(
        f"durable sends/s, {a.messages} messages over {a.instances} instances"
        f" (receiver: {kind}, nice {a.receiver_nice}; CPU per send while the sends go on)"
    )
    for n, pair in enumerate(res["dispatch"], 1):
        for label, *_ in sides:
            row = pair[label]
            print(
                f"  pair {n} {label:>14}: {fmt(row['durable_sends_per_s'], 0)} sends/s,"
                f" CPU us/send: daemon {fmt(row['daemon_cpu_us_per_send'], 0)},"
                f" worker {fmt(row['worker_cpu_us_per_send'], 0)},"
                f" receiver {fmt(row['receiver_cpu_us_per_send'], 0)}"
                f" (per delivery: worker {fmt(row['worker_cpu_us_per_delivery'], 0)},"
                f" receiver {fmt(row['receiver_cpu_us_per_delivery'], 0)};"
                f" {row['deliveries_done_at_sent']} deliveries done at the last send;"
                f" load {row['load']:.2f})"
            )
        costs = ", ".join(f"{k} {fmt(v, 1)} %" for k, v in pair["costs"].items())
        print(f"  pair {n} cost: {costs}")
    for label, *_ in sides[1:]:
        median = statistics.median(p["costs"][label] for p in res["dispatch"])
        verdict = "meets" if median < 10.0 else "MISSES"
        print(
            f"  cost of 10 busy webhooks, {label} (median of {a.pairs} pairs):"
            f" {fmt(median, 1)} % ({verdict} < 10 %)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
