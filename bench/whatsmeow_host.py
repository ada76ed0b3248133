"""Figures for the whatsmeow driver hosts; nothing leaves the machine (loopback proxy only).

    .venv/bin/python bench/whatsmeow_host.py [--attempts 500] [--instances 200]

1. RSS and threads of one process holding 1, 10, 50 idle sessions: clients created, and clients
   whose dial stalls in a loopback proxy that never answers (started one at a time).
2. fd count and RSS of one real driver host after N failed connects through a refusing proxy.
3. A HostPool with M instances connecting through the refusing proxy: time until every instance
   has its first (failed) attempt reported, and how many hosts that took.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["WAZ_WHATSMEOW_OFFLINE"] = "1"

from tests.whatsmeow.conftest import LoopbackProxy, Sink, make_driver  # noqa: E402
from waz_actors.config import parse  # noqa: E402
from waz_actors.drivers.base import Disconnected  # noqa: E402
from waz_actors.drivers.host.client import HostPool  # noqa: E402

IDLE_CHILD = r"""
import json, os, sys, threading, time
t0 = time.monotonic()
from neonize.client import NewClient
from neonize._binder import ProxySettings
imported = time.monotonic() - t0
n, mode, proxy, d = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def st():
    rss = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")][0]
    return {"rss_mib": round(rss / 1024, 1), "threads": len(os.listdir("/proc/self/task")),
            "fds": len(os.listdir("/proc/self/fd"))}
base = st()
clients = [NewClient(f"{d}/{mode}{i}.db", uuid=f"{mode}{i}") for i in range(n)]
for c in clients:
    if mode == "stalled":
        threading.Thread(target=c.connect, args=(ProxySettings(proxy),), daemon=True).start()
        time.sleep(0.15)  # one at a time: the Go side is not safe for concurrent connects
time.sleep(1.0)
print(json.dumps({"n": n, "mode": mode, "import_s": round(imported, 2), "base": base, **st()}))
sys.stdout.flush()
os._exit(0)
"""


def idle_sessions(proxy: LoopbackProxy, work: Path) -> list[dict]:
    out = []
    for mode in ("created", "stalled"):
        for n in (1, 10, 50):
            r = subprocess.run(
                [sys.executable, "-c", IDLE_CHILD, str(n), mode, proxy.url, str(work)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            line = [x for x in r.stdout.splitlines() if x.startswith("{")]
            out.append(
                json.loads(line[-1]) if line else {"n": n, "mode": mode, "error": r.stderr[-300:]}
            )
            print(out[-1], flush=True)
    return out


def failed_attempts(proxy: LoopbackProxy, work: Path, attempts: int) -> dict:
    cfg = parse({"whatsmeow": {"fd_budget": 100000, "heartbeat": 0.2}})
    pool = HostPool(cfg, work / "run", work / "state")
    pool.start()
    try:
        drv, sink = make_driver(pool, "fd", proxy.url, work)
        host = pool.hosts[drv.host_id]
        while not host.ready or not host.fds:
            time.sleep(0.05)
        before = (host.fds, host.rss_kib)
        t0 = time.monotonic()
        for i in range(attempts):
            drv.connect()
            sink.wait(lambda evs, n=i + 1: len(evs) >= n, timeout=30)
        took = time.monotonic() - t0
        time.sleep(0.5)  # one more pong
        res = {
            "attempts": attempts,
            "seconds": round(took, 1),
            "fds_before": before[0],
            "fds_after": host.fds,
            "rss_mib_before": round(before[1] / 1024, 1),
            "rss_mib_after": round(host.rss_kib / 1024, 1),
            "threads": host.threads,
            "restarts": host.restarts,
        }
        print(res, flush=True)
        return res
    finally:
        pool.stop()


def many_instances(proxy: LoopbackProxy, work: Path, n: int) -> dict:
    cfg = parse({"whatsmeow": {"heartbeat": 1.0}})
    pool = HostPool(cfg, work / "run2", work / "state2")
    pool.start()
    try:
        t0 = time.monotonic()
        sinks: list[Sink] = []
        for i in range(n):
            drv, sink = make_driver(pool, f"i{i}", proxy.url, work)
            drv.connect()
            sinks.append(sink)
        queued = time.monotonic() - t0
        for s in sinks:
            s.wait(lambda evs: any(isinstance(e, Disconnected) for e in evs), timeout=300)
        took = time.monotonic() - t0
        rss = sum(h.rss_kib for h in pool.hosts.values()) / 1024
        res = {
            "instances": n,
            "hosts": len(pool.hosts),
            "connect_calls_s": round(queued, 3),
            "all_first_attempts_s": round(took, 1),
            "hosts_rss_mib_total": round(rss, 0),
            "host_deaths": pool.deaths,
        }
        print(res, flush=True)
        return res
    finally:
        pool.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attempts", type=int, default=500)
    ap.add_argument("--instances", type=int, default=200)
    args = ap.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="wmb", dir="/tmp"))
    stall, refuse = LoopbackProxy("stall"), LoopbackProxy("refuse")
    try:
        idle_sessions(stall, work)
        failed_attempts(refuse, work, args.attempts)
        if args.instances:
            many_instances(refuse, work, args.instances)
    finally:
        stall.close()
        refuse.close()
        threading.Thread(
            target=lambda: subprocess.run(["rm", "-rf", str(work)]), daemon=True
        ).start()


if __name__ == "__main__":
    main()
