"""CPU per webhook POST in the delivery worker's HTTP path (net/webhook_http.py), A/B.

    .venv/bin/python bench/webhook_post.py [--requests 3000] [--concurrency 10] [--rounds 3]
                                           [--against OLD_webhook_http.py]

N POSTs of a 400-byte body through `webhook_http.session()`/`post()` on the worker's event loop
(uvloop when installed), `--concurrency` at a time as the worker's pool does, to
bench/hook_receiver.py in a subprocess of its own; the figure is this process's CPU time
(time.process_time: every thread, so a getaddrinfo in the default executor counts) per request,
the receiver's apart (/proc/<pid>/stat; `--streams-receiver`: the earlier asyncio-streams
one). Two URLs: a literal 127.0.0.1 and the name `localhost` (a name is
what a panel's webhook has). With --against (e.g. `git show main:waz_actors/net/webhook_http.py
> /tmp/old.py`), that file's `post`/`session` are measured too, alternating round by round with
the current ones so a change in the machine's load hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
# bench/http.py would stand for the stdlib's http package aiohttp imports: bench/ goes after it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
from waz_actors.net import webhook_http  # noqa: E402

sys.path.append(str(HERE))
from _common import free_port, machine_line, wait_until  # noqa: E402

BODY = b'{"id":"' + b"e" * 26 + b'","event":"message.status","data":{' + b'"x":1,' * 50 + b'"y":2}}'


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("old_webhook_http", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


async def _round(mod: ModuleType, url: str, n: int, concurrency: int) -> float:
    """CPU seconds per request over n requests."""
    kw = {"allow_private": True}
    takes = inspect.signature(mod.session).parameters
    session = mod.session(concurrency, 5.0, 15.0, **(kw if "allow_private" in takes else {}))
    timeout = {"timeout": 15.0} if "timeout" in inspect.signature(mod.post).parameters else {}
    headers = {"Content-Type": "application/json", "X-Waz-Event": "message.status"}
    async with session:
        # warm: the pool's connections opened before the clock starts
        await asyncio.gather(
            *(mod.post(session, url, BODY, headers, **kw, **timeout) for _ in range(concurrency))
        )
        left = n
        cpu0 = time.process_time()

        async def one() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                answer = await mod.post(session, url, BODY, headers, **kw, **timeout)
                assert answer.code == 204, answer

        await asyncio.gather(*(one() for _ in range(concurrency)))
        return (time.process_time() - cpu0) / n


def _runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--against")
    p.add_argument("--streams-receiver", action="store_true")
    a = p.parse_args(argv)
    impls = [("current", webhook_http)]
    if a.against:
        impls.insert(0, (f"against ({Path(a.against).name})", _load(a.against)))
    port = free_port()
    extra = ["--streams"] if a.streams_receiver else []
    receiver = subprocess.Popen([sys.executable, str(HERE / "hook_receiver.py"), str(port), *extra])
    got: dict[tuple[str, str], list[float]] = {}
    received: list[float] = []  # the receiver's CPU per request, every round
    try:
        wait_until(lambda: _listening(port), 10, "receiver up")
        print(machine_line())
        with _runner() as runner:
            for _ in range(a.rounds):
                for host in ("127.0.0.1", "localhost"):
                    for label, mod in impls:
                        url = f"http://{host}:{port}/hook"
                        rcpu = _cpu(receiver.pid)
                        cpu = runner.run(_round(mod, url, a.requests, a.concurrency))
                        # (the warm-up's requests too: `concurrency` more)
                        received.append((_cpu(receiver.pid) - rcpu) / (a.requests + a.concurrency))
                        got.setdefault((host, label), []).append(cpu)
    finally:
        receiver.kill()
        receiver.wait(10)
    print(
        f"CPU per POST, {a.requests} requests x {a.rounds} rounds, {a.concurrency} at a time"
        f" (load {os.getloadavg()[0]:.2f})"
    )
    kind = "asyncio streams" if a.streams_receiver else "asyncio.Protocol"
    print(
        f"  the receiver ({kind}): median {1e6 * statistics.median(received):.0f} us"
        f" CPU per request (/proc/<pid>/stat, 10 ms ticks)"
    )
    for (host, label), values in got.items():
        rounds = ", ".join(f"{1e6 * v:.0f}" for v in values)
        print(
            f"  {host:>9} {label:>28}: median {1e6 * statistics.median(values):.0f} us"
            f" (rounds: {rounds})"
        )
    return 0


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


if __name__ == "__main__":
    sys.exit(main())
