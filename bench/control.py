"""Control-plane benchmark: raw ZeroMQ vs. the daemon, ping and durable message.send.

    .venv/bin/python bench/control.py [--sequential 2000] [--clients 8] [--inflight 100]
                                      [--per-client 3000]

(a) raw DEALER/ROUTER on ipc: sequential round trip and pipelined echo with the payload size of
    a message.send request; one fsync of a small write on the state directory's filesystem;
(b) ping through the daemon (sequential);
(c) durable message.send: one client one at a time (p50, p99), then N clients each keeping
    `inflight` requests outstanding (acks per second; every ack is after the group commit).

Clients run in separate processes (spawn) so they do not share the daemon's GIL. Prints the
figures and the ratios the issue asks for. Loopback/ipc only.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TO = "5511999999999"
TEXT = "benchmark message " + "x" * 40


def send_request(i: int, token: str, instance_id: str) -> bytes:
    import msgpack

    args = {"instance_id": instance_id, "to": TO, "text": TEXT}
    return msgpack.packb(
        {"v": 1, "id": i, "cmd": "message.send", "token": token, "args": args}, use_bin_type=True
    )


def ping_request(i: int, token: str) -> bytes:
    import msgpack

    return msgpack.packb({"v": 1, "id": i, "cmd": "ping", "token": token}, use_bin_type=True)


# -- client workers (separate processes) -----------------------------------------------------


def sequential_worker(endpoint: str, frames: list[bytes], out: Any) -> None:
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    lat = []
    for f in frames[:50]:  # warm up the connection
        sock.send(f)
        sock.recv()
    for f in frames:
        t0 = time.perf_counter()
        sock.send(f)
        sock.recv()
        lat.append(time.perf_counter() - t0)
    sock.close(linger=0)
    out.put(lat)


def pipelined_worker(
    endpoint: str, frames: list[bytes], inflight: int, ready: Any, go: Any, out: Any
) -> None:
    import msgpack
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(endpoint)
    sock.send(frames[0])
    sock.recv()  # connected and warm
    ready.put(1)
    go.wait()
    t0 = time.time()
    sent = 1
    n = len(frames)
    while sent < min(n, inflight + 1):
        sock.send(frames[sent])
        sent += 1
    got = ok = 0
    while got < n - 1:
        reply = sock.recv()
        got += 1
        try:
            ok += 1 if msgpack.unpackb(reply, raw=False).get("ok") else 0
        except Exception:
            pass  # the raw echo sends back bytes that are not a reply
        if sent < n:
            sock.send(frames[sent])
            sent += 1
    t1 = time.time()
    sock.close(linger=0)
    out.put((got, ok, t0, t1))


# -- harness -------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def ms(x: float) -> str:
    return f"{x * 1000:.3f} ms"


def run_sequential(ctx: Any, endpoint: str, frames: list[bytes]) -> list[float]:
    q = ctx.Queue()
    p = ctx.Process(target=sequential_worker, args=(endpoint, frames, q))
    p.start()
    lat = q.get(timeout=600)
    p.join()
    return lat


def run_pipelined(
    ctx: Any, endpoint: str, per_client: list[list[bytes]], inflight: int
) -> tuple[float, int, int]:
    q, ready = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(target=pipelined_worker, args=(endpoint, frames, inflight, ready, go, q))
        for frames in per_client
    ]
    for p in procs:
        p.start()
    for _ in procs:  # every worker connected and warm before the clock starts
        ready.get(timeout=120)
    go.set()
    results = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    total = sum(r[0] for r in results)
    ok = sum(r[1] for r in results)
    elapsed = max(r[3] for r in results) - min(r[2] for r in results)
    return total / elapsed, total, ok


def echo_server(endpoint: str, stop: threading.Event) -> None:
    import zmq

    sock = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.bind(endpoint)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(100):
            continue
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            sock.send_multipart(frames)
    sock.close(linger=0)


def fsync_cost(directory: Path, n: int = 200) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    lat = []
    try:
        for i in range(n):
            os.write(fd, b"x" * 100)
            t0 = time.perf_counter()
            os.fsync(fd)
            lat.append(time.perf_counter() - t0)
            if i % 50 == 0:
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--inflight", type=int, default=100)
    ap.add_argument("--per-client", type=int, default=3000)
    ap.add_argument("--synchronous", default="FULL")
    args = ap.parse_args()

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    from waz_actors.app.runtime import Daemon
    from waz_actors.config import parse
    from waz_actors.control.auth import read_admin_token
    from waz_actors.control.client import Client

    class BenchDaemon(Daemon):
        def _wants_whatsmeow(self) -> bool:
            return False  # no phone here: the sim driver only

    ctx = mp.get_context("spawn")
    work = Path(tempfile.mkdtemp(prefix="wzb", dir="/tmp"))
    print(f"cpus: {os.cpu_count()}  python {sys.version.split()[0]}  work dir {work}")
    try:
        # (a) raw ZeroMQ
        raw_ep = f"ipc://{work}/raw.sock"
        stop = threading.Event()
        t = threading.Thread(target=echo_server, args=(raw_ep, stop), daemon=True)
        t.start()
        token = "waz_" + "A" * 43
        sample = send_request(1, token, "bench-0")
        payload = b"\x01" + b"x" * (len(sample) - 1)
        raw_lat = run_sequential(ctx, raw_ep, [payload] * args.sequential)
        raw_rate, _, _ = run_pipelined(
            ctx, raw_ep, [[payload] * args.per_client] * args.clients, args.inflight
        )
        stop.set()
        t.join()
        fs = fsync_cost(work)
        raw_p50 = statistics.median(raw_lat)
        print(f"\n(a) raw DEALER/ROUTER, {len(payload)} B payload (python echo)")
        print(f"    round trip p50 {ms(raw_p50)}  p99 {ms(pct(raw_lat, 99))}")
        print(f"    pipelined echo {args.clients}x{args.inflight} in flight: {raw_rate:,.0f} msg/s")
        print(f"    one fsync (100 B write): {ms(fs)}")

        cfg = parse(
            {
                "daemon": {"state_dir": str(work / "state"), "runtime_dir": str(work / "run")},
                "store": {"synchronous": args.synchronous},
                "queue": {"max_size": 10_000_000},
                "control": {"max_inflight": 100_000},
            }
        )
        d = BenchDaemon(cfg)
        d.start()
        try:
            admin_token = read_admin_token(cfg.state_dir)
            with Client(cfg.control_endpoint, admin_token) as c:
                for i in range(args.clients):
                    c.instance_create("sim", f"bench-{i}")  # stopped: messages stay queued
            ep = cfg.control_endpoint

            # (b) ping
            ping_lat = run_sequential(
                ctx, ep, [ping_request(i, admin_token) for i in range(args.sequential)]
            )
            ping_p50 = statistics.median(ping_lat)
            print("\n(b) ping through the daemon")
            print(f"    p50 {ms(ping_p50)}  p99 {ms(pct(ping_lat, 99))}")
            pings = [
                [ping_request(j, admin_token) for j in range(args.per_client)]
                for _ in range(args.clients)
            ]
            ping_rate, _, _ = run_pipelined(ctx, ep, pings, args.inflight)
            print(f"    pipelined {args.clients}x{args.inflight} in flight: {ping_rate:,.0f} req/s")

            # (c) durable message.send
            n_seq = max(100, args.sequential // 4)
            send_lat = run_sequential(
                ctx, ep, [send_request(i, admin_token, "bench-0") for i in range(n_seq)]
            )
            send_p50 = statistics.median(send_lat)
            print(f"\n(c) durable message.send (synchronous={args.synchronous})")
            print(f"    sequential p50 {ms(send_p50)}  p99 {ms(pct(send_lat, 99))}")
            per_client = [
                [send_request(j, admin_token, f"bench-{i}") for j in range(args.per_client)]
                for i in range(args.clients)
            ]
            rate, total, ok = run_pipelined(ctx, ep, per_client, args.inflight)
            print(
                f"    {args.clients} clients x {args.inflight} in flight: {rate:,.0f} acks/s "
                f"({ok}/{total} ok)"
            )
            stored = sum(d.store.queue_stats(f"bench-{i}")["depth"] for i in range(args.clients))
            print(f"    messages durable in the store: {stored}")
            print(f"    writer: {d.store.stats()}")

            budget = 3 * (raw_p50 + fs)
            print("\nratios")
            print(f"    ping p50 / raw p50:                 {ping_p50 / raw_p50:.2f}x")
            print(
                f"    send p50 / (raw p50 + fsync):       {send_p50 / (raw_p50 + fs):.2f}x "
                f"(goal <= 3x: {'met' if send_p50 <= budget else 'NOT met'})"
            )
            print(f"    pipelined ping / raw echo:          {ping_rate / raw_rate:.2%}")
            print(f"    pipelined sends / raw echo:         {rate / raw_rate:.2%}")
            print(
                f"    pipelined sends vs goal 20,000/s:   {rate / 20000:.2f}x "
                f"({'met' if rate >= 20000 else 'NOT met'})"
            )
        finally:
            d.stop(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
