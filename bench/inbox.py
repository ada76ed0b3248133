"""Received messages: how fast `incoming` sim messages are stored and announced, and that a
redelivery adds nothing.

    .venv/bin/python bench/inbox.py [--n 5000]

A daemon in this process (sim driver, real store with synchronous=FULL), one online instance;
n `incoming` faults with distinct WhatsApp ids, then the same n again. Prints the time until
every message is in the inbox and its `message.<id>.in` event published, the rate, the time to
page through the whole inbox, and the rows and events after the redelivery (both must stay n).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.control.conftest import TestDaemon, make_config
from tests.waiting import wait_until
from waz_actors.events import EventRecorder


def count(d: TestDaemon, iid: str) -> int:
    rows, after = 0, None
    while True:
        page = d.store.list_inbox(iid, after=after, limit=1000)
        rows += len(page)
        if len(page) < 1000:
            return rows
        after = page[-1].inbox_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    n = ap.parse_args().n
    tmp = Path(tempfile.mkdtemp())
    cfg = make_config(tmp / "state", tmp / "run", sim={"send_latency": 0.0})
    d = TestDaemon(cfg, with_control=False)
    d.start()
    try:
        d.fleet.create("b1", "sim", "t", {}, desired="running")
        wait_until(lambda: (s := d.fleet.snapshot("b1")) is not None and s.state == "online")
        rec = EventRecorder(d.bus, "message.b1.in")
        t0 = time.perf_counter()
        for i in range(n):
            d.fleet.sim_fault("b1", "incoming", {"text": f"m{i}", "wa_id": f"W{i}"})
        rec.wait_for(lambda ev: len(ev) >= n, timeout=300)
        stored = time.perf_counter() - t0
        t1 = time.perf_counter()
        rows = count(d, "b1")
        listed = time.perf_counter() - t1
        for i in range(n):
            d.fleet.sim_fault("b1", "incoming", {"text": f"m{i}", "wa_id": f"W{i}"})
        # the redeliveries are committed (and found to be known) once the writer is idle
        wait_until(lambda: d.fleet.sim.stats()["incoming"] == 2 * n)  # type: ignore[union-attr]
        time.sleep(0.2)
        d.store.flush()
        print(f"n={n}: stored and published in {stored:.2f} s ({n / stored:.0f}/s)")
        print(f"inbox.list of all {rows} rows (pages of 1000): {listed * 1000:.0f} ms")
        print(f"after redelivering all: rows {count(d, 'b1')}, events {len(rec.events)}")
    finally:
        d.stop(timeout=5)


if __name__ == "__main__":
    main()
