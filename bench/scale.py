"""Scale: thousands of sim instances in one daemon process, and durable dispatch throughput.

    .venv/bin/python bench/scale.py [--instances 5000] [--connect-rate 2000] [--idle 60]
                                    [--dispatch-instances 200] [--messages 20000]
                                    [--send-latency 0] [--window 2000] [--json]

Two daemons run one after the other, each a real `waz-actors run` subprocess with the in-process
sim network (time_scale 1: real time):

  fleet     --instances sim instances from the config file, `daemon.connect_rate` raised from 20/s
            (the production default) to --connect-rate so start-up is not throttle-bound; start-up
            time to all online, RSS, threads, idle CPU over --idle seconds (utime+stime from
            /proc/<pid>/stat), `instance.list` and `daemon.status` latency over the control socket.
  dispatch  --dispatch-instances instances, `[queue] pacing_interval = 0`, `max_size` 1000,
            `[sim] send_latency` = --send-latency: --messages `message.send` requests pipelined
            over one DEALER socket (up to --window outstanding); figures are accept rate (replies
            with a message_id) and end-to-end durable sends/s (first request to the moment the
            database holds every message as `sent`, read from SQLite by this process).

Baselines in the same run: a raw SQLite WAL commit per row (the fsync floor the outbox is built
on) and a raw zmq DEALER/ROUTER round trip (the transport floor for the control socket).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgpack
import zmq
from _common import (
    Client,
    DaemonProcess,
    config_toml,
    fmt,
    machine_line,
    pct,
    proc_sample,
    wait_until,
)

GOALS = {
    "startup_s": 10.0,
    "rss_mib": 500.0,
    "idle_cpu_pct": 2.0,
    "instance_list_p50_ms": 100.0,
    "durable_sends_per_s": 5000.0,
}


# --- baselines --------------------------------------------------------------------------------


def raw_sqlite_commits(path: Path, n: int = 2000) -> float:
    """Commits per second, one INSERT per transaction, WAL + synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE m (id TEXT PRIMARY KEY, body TEXT)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO m VALUES (?, ?)", (f"M{i}", "hello"))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def raw_zmq_roundtrip(endpoint: str, n: int = 2000) -> float:
    """Median round trip (ms) of a msgpack map through DEALER -> ROUTER echo on `endpoint`."""
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(endpoint)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            if router.poll(50):
                ident, body = router.recv_multipart()
                router.send_multipart([ident, body])

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    lat = []
    req = msgpack.packb({"v": 1, "id": 1, "cmd": "ping", "token": "x" * 43})
    for _ in range(n):
        t0 = time.perf_counter()
        dealer.send(req)
        dealer.recv()
        lat.append(time.perf_counter() - t0)
    stop.set()
    t.join(2)
    dealer.close()
    router.close()
    return (pct(lat, 0.5) or 0.0) * 1e3


# --- fleet phase ------------------------------------------------------------------------------


def _timed(fn: Any, n: int) -> list[float]:
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t0)
    return lat


def run_fleet(
    work: Path, instances: int, connect_rate: float, idle: float, timeout: float
) -> dict[str, Any]:
    cfg = work / "fleet.toml"
    cfg.write_text(
        config_toml(
            {
                "daemon": {"connect_rate": connect_rate, "log_level": "WARNING"},
            },
            [{"id": f"i{n:05d}", "driver": "sim", "tenant": "bench"} for n in range(instances)],
        )
    )
    daemon = DaemonProcess(cfg, work / "fleet-state", work / "fleet-run")
    t0 = time.monotonic()
    daemon.start()
    out: dict[str, Any] = {"instances": instances, "connect_rate": connect_rate}
    try:
        client = daemon.wait_ready(timeout)
        out["control_ready_s"] = time.monotonic() - t0
        client.timeout = 30.0

        def all_online() -> bool:
            states = client.daemon_status()["states"]
            out["last_states"] = {k: v for k, v in states.items() if v}
            return states.get("online", 0) == instances

        wait_until(all_online, timeout, f"{instances} instances online", interval=0.05)
        out["startup_s"] = time.monotonic() - t0
        out.pop("last_states", None)
        sample = proc_sample(daemon.pid)
        out["rss_mib"] = sample.rss_mib
        out["threads"] = sample.threads
        # Let start-up work (store writes, first snapshots) settle before the idle window.
        time.sleep(min(5.0, idle / 4))
        before = proc_sample(daemon.pid)
        t_idle = time.monotonic()
        time.sleep(idle)  # the measurement window itself: nothing to wait for
        after = proc_sample(daemon.pid)
        wall = time.monotonic() - t_idle
        out["idle_window_s"] = wall
        out["idle_cpu_pct"] = 100.0 * (after.cpu_seconds - before.cpu_seconds) / wall
        out["rss_after_idle_mib"] = after.rss_mib
        lst = _timed(client.instance_list, 20)
        sts = _timed(client.daemon_status, 20)
        out["instance_list_p50_ms"] = (pct(lst, 0.5) or 0) * 1e3
        out["instance_list_max_ms"] = max(lst) * 1e3
        out["daemon_status_p50_ms"] = (pct(sts, 0.5) or 0) * 1e3
        out["daemon_status_max_ms"] = max(sts) * 1e3
        out["online_after"] = client.daemon_status()["states"].get("online", 0)
        client.close()
        t_stop = time.monotonic()
        rc = daemon.stop(60)
        out["stop_s"] = time.monotonic() - t_stop
        out["stop_rc"] = rc
    finally:
        if daemon.alive():
            daemon.kill9()
    return out


# --- dispatch phase ---------------------------------------------------------------------------


def pipelined_sends(
    endpoint: str, token: str, targets: list[str], window: int, timeout: float
) -> tuple[list[str], list[dict[str, Any]]]:
    """Send one `message.send` per target over one DEALER, at most `window` unanswered.

    Returns (accepted message ids, error replies). Nothing is retried: on a healthy daemon every
    request must be accepted, and an error is a finding.
    """
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    accepted: list[str] = []
    errors: list[dict[str, Any]] = []
    sent = 0
    deadline = time.monotonic() + timeout
    try:
        while len(accepted) + len(errors) < len(targets):
            while sent < len(targets) and sent - len(accepted) - len(errors) < window:
                req = {
                    "v": 1,
                    "id": sent,
                    "cmd": "message.send",
                    "token": token,
                    "args": {"instance_id": targets[sent], "to": "6281234567890", "text": "hi"},
                }
                sock.send(msgpack.packb(req, use_bin_type=True))
                sent += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(targets) - len(accepted) - len(errors)} replies missing")
            if not sock.poll(1000):
                continue
            reply = msgpack.unpackb(sock.recv(), raw=False)
            if reply.get("ok"):
                accepted.append(reply["result"]["message_id"])
            else:
                errors.append(reply.get("error") or {})
    finally:
        sock.close()
    return accepted, errors


def _count_sent(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(
            conn.execute("SELECT count(*) FROM messages WHERE status = 'sent'").fetchone()[0]
        )
    finally:
        conn.close()


def run_dispatch(
    work: Path, instances: int, messages: int, send_latency: float, window: int, timeout: float
) -> dict[str, Any]:
    cfg = work / "dispatch.toml"
    max_size = max(1000, 2 * messages // instances)
    cfg.write_text(
        config_toml(
            {
                "daemon": {"connect_rate": 2000.0, "log_level": "WARNING"},
                "queue": {"pacing_interval": 0.0, "max_size": max_size},
                "sim": {"send_latency": send_latency},
                "control": {"max_inflight": max(20000, window * 2)},
            },
            [{"id": f"d{n:04d}", "driver": "sim", "tenant": "bench"} for n in range(instances)],
        )
    )
    daemon = DaemonProcess(cfg, work / "dispatch-state", work / "dispatch-run")
    daemon.start()
    out: dict[str, Any] = {
        "instances": instances,
        "messages": messages,
        "sim_send_latency_s": send_latency,
        "window": window,
        "queue_max_size": max_size,
    }
    try:
        client: Client = daemon.wait_ready(timeout)
        client.timeout = 30.0
        wait_until(
            lambda: client.daemon_status()["states"].get("online", 0) == instances,
            timeout,
            f"{instances} dispatch instances online",
            interval=0.05,
        )
        targets = [f"d{n % instances:04d}" for n in range(messages)]
        db = daemon.state_dir / "waz.db"
        t0 = time.monotonic()
        accepted, errors = pipelined_sends(
            daemon.endpoint, daemon.token(), targets, window, timeout
        )
        t_accepted = time.monotonic()
        out["accepted"] = len(accepted)
        out["errors"] = len(errors)
        out["error_codes"] = sorted({str(e.get("code")) for e in errors})
        out["accept_per_s"] = len(accepted) / (t_accepted - t0)
        wait_until(
            lambda: _count_sent(db) >= len(accepted), timeout, "every accepted message sent", 0.01
        )
        t_sent = time.monotonic()
        out["durable_sends_per_s"] = len(accepted) / (t_sent - t0)
        out["end_to_end_s"] = t_sent - t0
        stats = client.sim_stats()["totals"]
        out["sim_delivered"] = stats["delivered"]
        out["sim_duplicates"] = stats["duplicates"]
        out["rss_mib"] = proc_sample(daemon.pid).rss_mib
        client.close()
        daemon.stop(60)
    finally:
        if daemon.alive():
            daemon.kill9()
    return out


# --- report -----------------------------------------------------------------------------------


def _verdict(value: float | None, goal: float, higher_is_better: bool) -> str:
    if value is None:
        return "n/a"
    ok = value >= goal if higher_is_better else value <= goal
    return "met" if ok else f"MISSED by {abs(value - goal) / goal * 100:.0f}%"


def report(res: dict[str, Any]) -> str:
    f, d, b = res["fleet"], res["dispatch"], res["baseline"]
    lines = [
        f"machine: {res['machine']}",
        "",
        f"fleet: {f['instances']} sim instances, connect_rate {f['connect_rate']:g}/s, "
        "time_scale 1, sim connect latency 0.5 s",
        f"  {'figure':<28}{'measured':>12}{'goal':>12}  verdict",
    ]
    rows = [
        ("start-up to all online (s)", f.get("startup_s"), GOALS["startup_s"], False),
        ("RSS (MiB)", f.get("rss_mib"), GOALS["rss_mib"], False),
        ("idle CPU (% of a core)", f.get("idle_cpu_pct"), GOALS["idle_cpu_pct"], False),
        (
            "instance.list p50 (ms)",
            f.get("instance_list_p50_ms"),
            GOALS["instance_list_p50_ms"],
            False,
        ),
    ]
    for name, value, goal, higher in rows:
        lines.append(f"  {name:<28}{fmt(value):>12}{goal:>12g}  {_verdict(value, goal, higher)}")
    lines += [
        f"  control socket ready (s)    {fmt(f.get('control_ready_s')):>12}",
        f"  threads                     {fmt(f.get('threads')):>12}",
        f"  RSS after idle (MiB)        {fmt(f.get('rss_after_idle_mib')):>12}",
        f"  instance.list max (ms)      {fmt(f.get('instance_list_max_ms')):>12}",
        f"  daemon.status p50/max (ms)  {fmt(f.get('daemon_status_p50_ms')):>12}"
        f" / {fmt(f.get('daemon_status_max_ms'))}",
        f"  SIGTERM to exit (s)         {fmt(f.get('stop_s')):>12}",
        "",
        f"dispatch: {d['messages']} messages over {d['instances']} instances, pacing off, "
        f"sim send latency {d['sim_send_latency_s']:g} s, window {d['window']}",
        f"  accepted {d.get('accepted')}  errors {d.get('errors')} {d.get('error_codes') or ''}",
        f"  accept rate (msg/s)         {fmt(d.get('accept_per_s'), 0):>12}",
        f"  durable sends/s             {fmt(d.get('durable_sends_per_s'), 0):>12}"
        f"{GOALS['durable_sends_per_s']:>12g}  "
        f"{_verdict(d.get('durable_sends_per_s'), GOALS['durable_sends_per_s'], True)}",
        f"  sim delivered {d.get('sim_delivered')}  duplicates {d.get('sim_duplicates')}",
        "",
        "baseline (same machine, same run):",
        f"  raw SQLite WAL commit/row, synchronous=FULL: {b['sqlite_commits_per_s']:.0f} commits/s",
        f"  raw zmq DEALER/ROUTER msgpack round trip (ipc): p50 {b['zmq_rtt_ms']:.3f} ms",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--instances", type=int, default=5000)
    p.add_argument("--connect-rate", type=float, default=2000.0)
    p.add_argument("--idle", type=float, default=60.0, help="idle CPU window, seconds")
    p.add_argument("--dispatch-instances", type=int, default=200)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--send-latency", type=float, default=0.0, help="sim send latency, seconds")
    p.add_argument("--window", type=int, default=2000, help="unanswered sends at most")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--skip-fleet", action="store_true")
    p.add_argument("--skip-dispatch", action="store_true")
    p.add_argument("--dir", help="work directory (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = p.parse_args(argv)
    for name in ("instances", "dispatch_instances", "messages", "window"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.idle <= 0 or a.connect_rate <= 0 or a.send_latency < 0 or a.timeout <= 0:
        p.error("--idle, --connect-rate and --timeout must be > 0, --send-latency >= 0")

    with tempfile.TemporaryDirectory(prefix="waz-scale-", dir=a.dir) as tmp:
        work = Path(tmp)
        res: dict[str, Any] = {"machine": machine_line()}
        res["baseline"] = {
            "sqlite_commits_per_s": raw_sqlite_commits(work / "raw.db"),
            "zmq_rtt_ms": raw_zmq_roundtrip(f"ipc://{work}/raw.sock"),
        }
        res["fleet"] = (
            {"instances": 0, "connect_rate": a.connect_rate}
            if a.skip_fleet
            else run_fleet(work, a.instances, a.connect_rate, a.idle, a.timeout)
        )
        res["dispatch"] = (
            {"instances": 0, "messages": 0, "sim_send_latency_s": a.send_latency, "window": 0}
            if a.skip_dispatch
            else run_dispatch(
                work, a.dispatch_instances, a.messages, a.send_latency, a.window, a.timeout
            )
        )
    print(json.dumps(res, indent=2) if a.json else report(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
