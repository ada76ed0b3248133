"""The cost of fencing owner writes on PostgreSQL (issue 16): `sending` writes of many instances
through the group commit, fenced once per transaction (waz_fence_all: the daemon's way), once
per write (one waz_fence each: what a caller that names no owner gets), and not at all.

    .venv/bin/python bench/fence.py [--n 4000] [--instances 50] [--rounds 5] [--pg URL]

The three modes alternate in every round on one store, in a schema of its own dropped
afterwards; the medians are printed. Each round enqueues n messages spread over the instances
(not timed), then times n `sending` writes submitted at once (the writer batches them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

# The repository first, then bench/.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pg import DEFAULT_URL, with_search_path
from tests.store.store_helpers import instance, message
from waz_actors.cluster.leases import LeaseStore
from waz_actors.store import Store

MODES = ("per transaction", "per write", "off")


def one_round(store: Store, ids: list[str], epochs: dict[str, int], mode: str, n: int) -> float:
    accepted = [store.enqueue(message(ids[k % len(ids)]), max_queue=10**9) for k in range(n)]
    recs = [f.result()[0] for f in accepted]
    store.fence_writes(epochs.get)
    if mode == "off":
        store.writer.fencing = None
    t0 = time.perf_counter()
    owner = mode == "per transaction"
    sends = [
        store.update_message(r.message_id, "sending", owner=r.instance_id if owner else None)
        for r in recs
    ]
    for f in sends:
        f.result()
    took = time.perf_counter() - t0
    for f in [store.update_message(r.message_id, "sent") for r in recs]:
        f.result()
    return n / took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pg", default=os.environ.get("WAZ_TEST_PG") or DEFAULT_URL)
    args = ap.parse_args()
    import psycopg

    schema = "waz_bench_fence_" + uuid.uuid4().hex[:8]
    with psycopg.connect(args.pg, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    url = with_search_path(args.pg, schema)
    try:
        store = Store(url)
        store.open()
        leases = LeaseStore(url, "bench", 3600.0)
        try:
            ids = [f"i{k:03d}" for k in range(args.instances)]
            for iid in ids:
                store.create_instance(instance(iid))
            leases.ensure(ids)
            epochs = {a.instance_id: a.epoch for a in leases.acquire(len(ids))}
            rates: dict[str, list[float]] = {m: [] for m in MODES}
            for r in range(args.rounds):
                for mode in MODES:
                    rates[mode].append(one_round(store, ids, epochs, mode, args.n))
                    print(f"round {r} {mode:16s} {rates[mode][-1]:8.0f} sending writes/s")
            print(f"n={args.n} instances={args.instances} load={os.getloadavg()[0]:.2f}")
            for mode in MODES:
                print(f"{mode:16s} median {statistics.median(rates[mode]):8.0f} writes/s")
        finally:
            leases.close()
            store.close()
    finally:
        with psycopg.connect(args.pg, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
