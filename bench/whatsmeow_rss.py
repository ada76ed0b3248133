"""RSS per whatsmeow driver host with 8, 32 and 64 idle sessions; nothing leaves the machine.

    .venv/bin/python bench/whatsmeow_rss.py [--sizes 8,32,64] [--settle 5]

Per size N, two figures:

1. `host`: a real HostPool with `sessions_per_host` = N, so all N instances share one driver host.
   Every instance connects through a loopback proxy that refuses (WhatsApp unreachable); once
   every first attempt has failed the script waits `--settle` s and reads the host's RSS,
   threads and fds from its heartbeat. (A proxy that accepts and never answers would not do: a
   hung connect holds the host's library lock, so the other N-1 sessions would never be
   created.)
2. `clients`: one process with the same library holding N created, idle clients (session
   database open, Go client built, no dial): what N sessions cost the host before any traffic.
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

from bench.whatsmeow_host import IDLE_CHILD  # noqa: E402
from tests.whatsmeow.conftest import LoopbackProxy, Sink, make_driver  # noqa: E402
from waz_actors.config import parse  # noqa: E402
from waz_actors.drivers.base import Disconnected  # noqa: E402
from waz_actors.drivers.host.client import HostPool  # noqa: E402


def one_host(proxy: LoopbackProxy, work: Path, n: int, settle: float) -> dict[str, object]:
    cfg = parse(
        {
            "whatsmeow": {"sessions_per_host": n, "heartbeat": 1.0},
            "connection": {"timeout": 3600},
        }
    )
    pool = HostPool(cfg, work / f"run{n}", work / f"state{n}")
    pool.start()
    try:
        sinks: list[Sink] = []
        for i in range(n):
            drv, sink = make_driver(pool, f"s{n}x{i}", proxy.url, work)
            drv.connect()
            sinks.append(sink)
        for s in sinks:
            s.wait(lambda evs: any(isinstance(e, Disconnected) for e in evs), timeout=300)
        time.sleep(settle)
        res: dict[str, object] = {
            "what": "host",
            "sessions": n,
            "hosts": len(pool.hosts),
            "rss_mib": [round(h.rss_kib / 1024, 1) for h in pool.hosts.values()],
            "threads": [h.threads for h in pool.hosts.values()],
            "fds": [h.fds for h in pool.hosts.values()],
            "host_deaths": pool.deaths,
        }
        print(json.dumps(res), flush=True)
        return res
    finally:
        pool.stop()


def clients(work: Path, n: int) -> dict[str, object]:
    r = subprocess.run(
        [sys.executable, "-c", IDLE_CHILD, str(n), "created", "", str(work)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("{")]
    res: dict[str, object] = {"what": "clients", "sessions": n}
    res.update(json.loads(line[-1]) if line else {"error": r.stderr[-300:]})
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8,32,64")
    ap.add_argument("--settle", type=float, default=5.0)
    args = ap.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="wmr", dir="/tmp"))
    refuse = LoopbackProxy("refuse")
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            one_host(refuse, work, n, args.settle)
            clients(work, n)
    finally:
        refuse.close()
        threading.Thread(
            target=lambda: subprocess.run(["rm", "-rf", str(work)]), daemon=True
        ).start()


if __name__ == "__main__":
    main()
