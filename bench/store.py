"""Store write throughput: raw commit-per-row vs Store.enqueue (group commit), SQLite and PG.

    .venv/bin/python bench/store.py [--n 1000] [--dir /tmp] [--synchronous FULL] [--pg URL]

The PostgreSQL lines run on --pg (default: WAZ_TEST_PG, else postgresql://postgres@127.0.0.1:5432/
postgres), each in a schema of its own dropped afterwards; skipped when it does not answer.

Prints per-op latency p50/p99 (ms) and ops/s for:
  raw        one INSERT + COMMIT per row on a WAL, synchronous=FULL connection (the fsync floor);
             on PostgreSQL one INSERT + COMMIT per row on one connection (the server's commit floor)
  serial     Store.enqueue(...).result() one at a time (one commit per message, plus a thread hop)
  futures    n enqueues submitted at once, latency from submit to commit
  threads    32 threads each doing enqueue().result() in a loop (like control-socket handlers)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pg import DEFAULT_URL, with_search_path
from waz_actors.store import InstanceRecord, MessageRecord, Store
from waz_actors.types import new_message_id


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(name: str, lat: list[float], elapsed: float, extra: str = "") -> None:
    print(
        f"{name:<8} n={len(lat):<6} p50={_pct(lat, 0.5) * 1e3:8.3f} ms"
        f"  p99={_pct(lat, 0.99) * 1e3:8.3f} ms  mean={statistics.fmean(lat) * 1e3:8.3f} ms"
        f"  {len(lat) / elapsed:10.0f} ops/s  {extra}"
    )


def bench_raw(path: Path | str, n: int, synchronous: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE m (id TEXT PRIMARY KEY, instance TEXT, body TEXT, t REAL)")
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO m VALUES (?, ?, ?, ?)", (f"M{i}", "i1", "hello", time.time()))
        conn.execute("COMMIT")
        lat.append(time.perf_counter() - t0)
    _report("raw", lat, time.perf_counter() - start)
    conn.close()


@contextlib.contextmanager
def pg_schema(url: str) -> Iterator[str]:
    """A URL whose tables land in a new schema, dropped afterwards."""
    import psycopg

    schema = f"waz_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def bench_raw_pg(url: str, n: int) -> None:
    import psycopg

    with pg_schema(url) as target, psycopg.connect(target, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE m (id TEXT PRIMARY KEY, instance TEXT, body TEXT, t DOUBLE PRECISION)"
        )
        lat = []
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO m VALUES (%s, %s, %s, %s)", (f"M{i}", "i1", "hello", time.time())
            )
            conn.execute("COMMIT")
            lat.append(time.perf_counter() - t0)
        _report("raw", lat, time.perf_counter() - start)


def _message(now: float) -> MessageRecord:
    return MessageRecord(
        message_id=new_message_id(), instance_id="i1", tenant="t1", to="5511999999999",
        text="hello", media=None, status="queued", attempts=0, last_error=None, wa_id=None,
        idempotency_key=None, created_at=now, updated_at=now, expires_at=None,
    )  # fmt: skip


def _store(path: Path | str, synchronous: str) -> Store:
    s = Store(path, synchronous=synchronous)
    s.open()
    s.create_instance(
        InstanceRecord("i1", "t1", "sim", {}, "running", "stopped", 0.0, None, None, None, 0.0)
    )
    return s


def _commits(s: Store, before: int) -> str:
    return f"commits={s.stats()['commits'] - before}"


def bench_serial(path: Path | str, n: int, synchronous: str) -> None:
    s = _store(path, synchronous)
    before = s.stats()["commits"]
    lat = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        s.enqueue(_message(time.time()), max_queue=10 * n).result()
        lat.append(time.perf_counter() - t0)
    _report("serial", lat, time.perf_counter() - start, _commits(s, before))
    s.close()


def bench_futures(path: Path | str, n: int, synchronous: str) -> None:
    s = _store(path, synchronous)
    before = s.stats()["commits"]
    lat: list[float] = []
    lock = threading.Lock()
    done = threading.Event()

    def on_done(t0: float) -> Callable[[Future], None]:
        def cb(f: Future) -> None:
            f.result()
            with lock:
                lat.append(time.perf_counter() - t0)
                if len(lat) == n:
                    done.set()

        return cb

    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        s.enqueue(_message(time.time()), max_queue=10 * n).add_done_callback(on_done(t0))
    assert done.wait(120)
    _report("futures", lat, time.perf_counter() - start, _commits(s, before))
    s.close()


def bench_threads(path: Path | str, n: int, synchronous: str, threads: int = 32) -> None:
    s = _store(path, synchronous)
    before = s.stats()["commits"]
    per = n // threads
    lat: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        mine = []
        barrier.wait()
        for _ in range(per):
            t0 = time.perf_counter()
            s.enqueue(_message(time.time()), max_queue=10 * n).result()
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    _report(f"threads{threads}", lat, time.perf_counter() - start, _commits(s, before))
    s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--dir", default=None, help="where the databases go (default: a temp dir)")
    ap.add_argument("--synchronous", default="FULL")
    ap.add_argument("--pg", default=os.environ.get("WAZ_TEST_PG") or DEFAULT_URL)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="waz-bench-") as tmp:
        d = Path(tmp)
        print(f"sqlite {sqlite3.sqlite_version}, synchronous={args.synchronous}, dir={d}")
        bench_raw(d / "raw.db", args.n, args.synchronous)
        bench_serial(d / "serial.db", args.n, args.synchronous)
        bench_futures(d / "futures.db", args.n, args.synchronous)
        bench_threads(d / "threads.db", args.n, args.synchronous)
    try:
        import psycopg

        with psycopg.connect(args.pg, connect_timeout=3) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            sync = conn.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
    except Exception as e:
        print(f"postgresql: skipped ({e})")
        return
    print(f"postgresql {version}, synchronous_commit={sync}, psycopg {psycopg.__version__}")
    bench_raw_pg(args.pg, args.n)
    for bench in (bench_serial, bench_futures, bench_threads):
        with pg_schema(args.pg) as target:
            bench(target, args.n, args.synchronous)


if __name__ == "__main__":
    main()
