"""The lease SQL alone on a real PostgreSQL: what one lease round costs, how fast leases move.

    python bench/cluster_leases.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
        [--leases 1000]

Part of bench/cluster.py (the one command of issue 16's figures).

Runs in a fresh schema (dropped at the end) and prints:
- renew: one batched UPDATE renewing N leases (median and p95 over rounds, ms),
- acquire: N unowned leases taken by one node in batches of --batch,
- takeover: node b takes all N leases after node a's expire (time from expiry to all held),
- status: the cluster.status queries (nodes + N leases).
The failover itself (three daemons, kill -9, SIGTERM, a partition): tests/cluster/
test_failover.py.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from waz_actors.cluster.leases import LeaseStore  # noqa: E402
from waz_actors.cluster.status import cluster_status  # noqa: E402


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"median {statistics.median(xs) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms"


def run(url: str, n: int, batch: int, rounds: int, ttl: float) -> dict[str, float]:
    schema = "waz_bench_" + secrets.token_hex(4)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    surl = f"{url}{sep}options={urllib.parse.quote(f'-csearch_path={schema}')}"
    out: dict[str, float] = {}
    try:
        a = LeaseStore(surl, "a", ttl)
        b = LeaseStore(surl, "b", 60.0)
        a.migrate()
        a.heartbeat()
        b.heartbeat()
        a.ensure([f"i{k:06d}" for k in range(n)])

        t0 = time.perf_counter()
        held: dict[str, int] = {}
        while len(held) < n:
            got = a.acquire(batch)
            if not got:
                break
            held.update((g.instance_id, g.epoch) for g in got)
        out["acquire_s"] = time.perf_counter() - t0
        print(f"acquire {len(held)} leases in batches of {batch}: {out['acquire_s']:.3f} s")

        times = []
        last_renew = time.perf_counter()
        for _ in range(rounds):
            t = last_renew = time.perf_counter()
            renewed = a.renew(held)
            times.append(time.perf_counter() - t)
            assert len(renewed) == n
        out["renew_median_ms"] = statistics.median(times) * 1000
        print(f"renew {n} leases, one UPDATE per round ({rounds} rounds): {_ms(times)}")

        t = time.perf_counter()
        st = cluster_status(b, None)
        out["status_ms"] = (time.perf_counter() - t) * 1000
        print(f"cluster.status over {len(st['leases'])} leases: {out['status_ms']:.1f} ms")

        # a stops renewing (crash): b polls acquire until it holds every lease.
        expiry = last_renew + ttl  # sent before the database's now(): an upper bound
        taken = 0
        first = None
        while taken < n:
            got = b.acquire(batch)
            if got and first is None:
                first = time.perf_counter()
            taken += len(got)
            if not got:
                time.sleep(0.01)
        done = time.perf_counter()
        out["takeover_s"] = done - (first or done)
        out["takeover_after_expiry_s"] = done - expiry
        print(
            f"takeover of {n} leases by b after a's expiry: {out['takeover_s']:.3f} s from the "
            f"first to the last (all held {out['takeover_after_expiry_s']:.3f} s after expiry; "
            "a daemon adds its takeover_delay before connecting)"
        )
        a.close()
        b.close()
    finally:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--leases", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--ttl", type=float, default=2.0, help="a's lease ttl (s): the expiry wait")
    args = p.parse_args(argv)
    run(args.url, args.leases, args.batch, args.rounds, args.ttl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
