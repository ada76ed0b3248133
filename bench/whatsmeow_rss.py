"""RSS of one whatsmeow driver host holding 8, 32 and 64 idle sessions; nothing leaves the machine.

    .venv/bin/python bench/whatsmeow_rss.py [--sizes 8,32,64] [--settle 20]

Each size gets a fresh HostPool with `sessions_per_host` = N, so all N instances share one host.
Every instance connects through a loopback proxy that accepts and never answers: the session is
created and its dial hangs, as when WhatsApp is unreachable. After the last open the script waits
`--settle` seconds and reads the host's RSS, threads and fds from its heartbeat (pong).
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
        hosts = list(pool.hosts.values())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(h.ready and h.rss_kib for h in hosts):
            time.sleep(0.1)
        empty = {h.host_id: h.rss_kib for h in hosts}
        time.sleep(settle)
        res: dict[str, object] = {
            "sessions": n,
            "hosts": len(pool.hosts),
            "rss_mib": [round(h.rss_kib / 1024, 1) for h in pool.hosts.values()],
            "rss_mib_at_ready": [round(v / 1024, 1) for v in empty.values()],
            "threads": [h.threads for h in pool.hosts.values()],
            "fds": [h.fds for h in pool.hosts.values()],
            "host_deaths": pool.deaths,
        }
        print(json.dumps(res), flush=True)
        return res
    finally:
        pool.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="8,32,64")
    ap.add_argument("--settle", type=float, default=20.0)
    args = ap.parse_args()
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    work = Path(tempfile.mkdtemp(prefix="wmr", dir="/tmp"))
    stall = LoopbackProxy("stall")
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            one_host(stall, work, n, args.settle)
    finally:
        stall.close()
        threading.Thread(
            target=lambda: subprocess.run(["rm", "-rf", str(work)]), daemon=True
        ).start()


if __name__ == "__main__":
    main()
