"""What keeping whatsmeow sessions in PostgreSQL costs a connect (issue 16): a session's first
open (our schema + whatsmeow's migration, 17 tables) and a later one, next to SQLite files.

    .venv/bin/python bench/whatsmeow_pg.py [--n 8] [--pg URL]

One process with the real library, as a driver host does it: `wm_pg.prepare` then `NewClient`
and `connect`, through a loopback port that refuses, so only the store is timed (the dial fails
at once). The four cases alternate for each of n instances in a scratch database, dropped after.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pg import DEFAULT_URL
from waz_actors.drivers import wm_pg


def open_once(location: str, proxy: str, n: int) -> float:
    from neonize._binder import ProxySettings
    from neonize.client import NewClient

    t = time.perf_counter()
    if wm_pg.is_pg(location):
        wm_pg.prepare(location)
    try:
        NewClient(location, uuid=f"bench.{n}").connect(ProxySettings(proxy_address=proxy))
    except Exception:
        pass  # the refused dial: the store was opened and migrated before it
    return time.perf_counter() - t


def main() -> None:
    import psycopg

    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--pg", default=DEFAULT_URL)
    args = p.parse_args()
    name = f"wz_bench_wm_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}".encode())
    parts = urlsplit(args.pg)
    base = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))  # never listening: every dial is refused at once
    proxy = f"socks5://127.0.0.1:{refusing.getsockname()[1]}"
    times: dict[str, list[float]] = {k: [] for k in ("pg first", "pg again", "sqlite first")}
    times["sqlite again"] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.n):
                pg, sq = wm_pg.session_url(base, f"bench{i}", {}), f"{tmp}/bench{i}.db"
                times["pg first"].append(open_once(pg, proxy, 4 * i))
                times["sqlite first"].append(open_once(sq, proxy, 4 * i + 1))
                times["pg again"].append(open_once(pg, proxy, 4 * i + 2))
                times["sqlite again"].append(open_once(sq, proxy, 4 * i + 3))
    finally:
        refusing.close()
        with psycopg.connect(args.pg, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())
    for k, v in times.items():
        print(
            f"{k:13s} median {1000 * statistics.median(v):5.0f} ms"
            f"   (min {1000 * min(v):.0f}, max {1000 * max(v):.0f}, n={len(v)})"
        )


if __name__ == "__main__":
    main()
