"""HTTP gateway vs. the ZeroMQ client, same daemon, same run: durable message.send.

    .venv/bin/python bench/http_gateway.py [--sequential 1000] [--connections 100]
                                           [--per-connection 50]

A real `waz-actors run` with `http.listen` set (so the gateway is the daemon's supervised
subprocess) and one stopped sim instance with a large queue: every send is accepted and made
durable (the path a panel waits on), none is delivered, so both sides measure the same work.

- 1 connection: one request at a time; sends per second, p50 and p99 latency.
  ZeroMQ: the project's Client (control/client.py). HTTP: one keep-alive connection,
  POST /v1/instances/b1/messages with a JSON body.
- N connections: N requests in flight at once from one asyncio process.
  ZeroMQ: the gateway's own AsyncControlClient (one DEALER, N tasks). HTTP: N keep-alive
  connections, one task each.
The client runs in this process; daemon and gateway are processes of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import (  # noqa: E402
    DaemonProcess,
    config_toml,
    fmt,
    free_port,
    machine_line,
    pct,
    proc_sample,
    wait_until,
)
from waz_actors.control.client import Client  # noqa: E402
from waz_actors.http.client import AsyncControlClient  # noqa: E402

TO = "5511999999999"
TEXT = "benchmark message " + "x" * 40
INSTANCE = "b1"


def args_for(i: int) -> dict[str, str]:
    return {"instance_id": INSTANCE, "to": TO, "text": f"{TEXT} {i}"}


def gateway_pid(daemon_pid: int) -> int:
    """The gateway is the daemon's child running `waz_actors http`."""
    for task in Path(f"/proc/{daemon_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"http" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                return int(child)
    raise RuntimeError("no gateway process")


def cpu(pids: tuple[int, int]) -> tuple[float, float]:
    return proc_sample(pids[0]).cpu_seconds, proc_sample(pids[1]).cpu_seconds


def summary(
    name: str,
    lat: list[float],
    wall: float,
    before: tuple[float, float],
    after: tuple[float, float],
) -> dict[str, float | str | None]:
    return {
        "name": name,
        "rate": len(lat) / wall,
        "p50_ms": (pct(lat, 0.50) or 0) * 1000,
        "p99_ms": (pct(lat, 0.99) or 0) * 1000,
        "daemon_us": (after[0] - before[0]) / len(lat) * 1e6,
        "gateway_us": (after[1] - before[1]) / len(lat) * 1e6,
    }


# -- one at a time --------------------------------------------------------------------------


def zmq_sequential(endpoint: str, token: str, n: int) -> list[float]:
    lat = []
    with Client(endpoint, token, timeout=10) as c:
        for i in range(n):
            t = time.perf_counter()
            c.call("message.send", args_for(i))
            lat.append(time.perf_counter() - t)
    return lat


def http_sequential(port: int, token: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lat = []
    for i in range(n):
        body = json.dumps({"to": TO, "text": f"{TEXT} {i}"})
        t = time.perf_counter()
        conn.request("POST", f"/v1/instances/{INSTANCE}/messages", body, headers)
        r = conn.getresponse()
        r.read()
        lat.append(time.perf_counter() - t)
        if r.status != 201:
            raise RuntimeError(f"HTTP {r.status}")
    conn.close()
    return lat


# -- many in flight -------------------------------------------------------------------------


async def gather_timed(
    workers: int,
    per_worker: int,
    make: Callable[[int], Awaitable[Callable[[int], Awaitable[None]]]],
) -> tuple[list[float], float]:
    lat: list[float] = []

    async def worker(w: int) -> None:
        send = await make(w)
        for i in range(per_worker):
            t = time.perf_counter()
            await send(w * per_worker + i)
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return lat, time.perf_counter() - t0


async def zmq_concurrent(
    endpoint: str, token: str, workers: int, per: int
) -> tuple[list[float], float]:
    client = AsyncControlClient(endpoint, timeout=30)
    client.start()

    async def make(_w: int) -> Callable[[int], Awaitable[None]]:
        async def send(i: int) -> None:
            await client.call("message.send", args_for(i), token)

        return send

    try:
        return await gather_timed(workers, per, make)
    finally:
        await client.close()


async def http_concurrent(
    port: int, token: str, workers: int, per: int
) -> tuple[list[float], float]:
    """Keep-alive HTTP/1.1 by hand: a client library's own overhead would be measured too."""
    path = f"/v1/instances/{INSTANCE}/messages"

    async def make(_w: int) -> Callable[[int], Awaitable[None]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send(i: int) -> None:
            body = json.dumps({"to": TO, "text": f"{TEXT} {i}"}).encode()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if b" 201 " not in status_line:
                raise RuntimeError(status_line.decode())

        return send

    return await gather_timed(workers, per, make)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequential", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--per-connection", type=int, default=50)
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wzbh", dir="/tmp"))
    port = free_port()
    cfg = tmp / "waz.toml"
    cfg.write_text(config_toml(
        {"daemon": {"log_level": "WARNING"},
         "queue": {"max_size": 10_000_000, "pacing_interval": 0.0},
         "http": {"listen": f"127.0.0.1:{port}", "create_driver": "sim"}},
        [{"id": INSTANCE, "driver": "sim", "tenant": "bench", "autostart": False}],
    ))  # fmt: skip
    daemon = DaemonProcess(cfg, tmp / "state", tmp / "run")
    daemon.start()
    try:
        admin = daemon.wait_ready()
        token = admin.token_create("bench", "bench/http_gateway.py")["token"]

        def gateway_up() -> bool:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/healthz")
                return c.getresponse().status == 200
            except OSError:
                return False

        wait_until(gateway_up, 30, "the gateway")
        pids = (daemon.pid, gateway_pid(daemon.pid))
        print(machine_line())
        rows = []
        # Warm both paths (imports, first connections, SQLite pages).
        zmq_sequential(daemon.endpoint, token, 50)
        http_sequential(port, token, 50)
        for name, fn in (
            ("zmq   1 conn", lambda: zmq_sequential(daemon.endpoint, token, a.sequential)),
            ("http  1 conn", lambda: http_sequential(port, token, a.sequential)),
        ):
            before, t0 = cpu(pids), time.perf_counter()
            lat = fn()
            rows.append(summary(name, lat, time.perf_counter() - t0, before, cpu(pids)))
        n, per = a.connections, a.per_connection
        for name, coro in (
            (f"zmq {n:>3} conc", lambda: zmq_concurrent(daemon.endpoint, token, n, per)),
            (f"http {n:>3} conn", lambda: http_concurrent(port, token, n, per)),
        ):
            before = cpu(pids)
            lat, wall = asyncio.run(coro())
            rows.append(summary(name, lat, wall, before, cpu(pids)))
        print("CPU per send in µs: the daemon's and the gateway's process (utime + stime)")
        print(f"{'':16} {'sends/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'daemon':>8} {'gateway':>8}")
        for r in rows:
            print(
                f"{r['name']:16} {fmt(r['rate'], 0):>9} {fmt(r['p50_ms']):>8} "
                f"{fmt(r['p99_ms']):>8} {fmt(r['daemon_us'], 0):>8} {fmt(r['gateway_us'], 0):>8}"
            )
        for i in (0, 2):
            z, h = rows[i], rows[i + 1]
            print(
                f"{h['name'].split()[1]} conn: HTTP/ZeroMQ rate {h['rate'] / z['rate']:.0%}, "  # type: ignore[operator]
                f"p50 overhead {h['p50_ms'] - z['p50_ms']:+.2f} ms"  # type: ignore[operator]
            )
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
