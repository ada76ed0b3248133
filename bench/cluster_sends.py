"""Durable sends per second with 1, 2 and 3 daemons on one PostgreSQL, next to one SQLite daemon.

    python bench/cluster_sends.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
        [--instances 30] [--messages 3000] [--senders 4] [--nodes 1,2,3]

Part of bench/cluster.py (the one command of issue 16's figures).

Every daemon is a real process (`waz-actors run`) on the networked simulator; the PostgreSQL
runs use a fresh schema each (dropped at the end). `--senders` client threads per node call
`message.send` (each spread over every instance) until `--messages` were accepted, then the
simulator's delivery log is polled until every accepted id was delivered. Prints per setup:
- accepted/s: accepted messages / time from the first send to the last reply,
- dispatched/s: accepted messages / time from the first send to the last one delivered,
- how busy the machine's CPUs were meanwhile (/proc/stat, every process: on a small machine the
  daemons, PostgreSQL, the simulator and the clients share the same cores),
- CPU seconds per 1,000 dispatched messages by the daemons, their PostgreSQL backends, all of
  PostgreSQL, the simulator and the bench (bench/cluster_cpu.py), and what the daemons and their
  backends burn per second idle (measured for IDLE_S before the sends).
Pacing is off (`queue.pacing_interval = 0`) and the simulator answers a send at once, as in
bench/scale.py's dispatch figure: the daemons' own speed, not the per-number pacing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ is sys.path[0]; the repository comes first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # last: after the standard library


import psycopg  # noqa: E402

from waz_actors.control.client import Client, ClientError  # noqa: E402

# After the standard library's http is imported: chaos puts bench/ first on sys.path.
importlib.import_module("http.client")
SimServerProcess = importlib.import_module("chaos").SimServerProcess
daemon_command = importlib.import_module("cluster_fleet").daemon_command
fresh_schema = importlib.import_module("cluster_fleet").fresh_schema
cpu_ticks = importlib.import_module("cluster_fleet").cpu_ticks
cpu = importlib.import_module("cluster_cpu")

SCALE = 0.01
IDLE_S = 3.0


def _config(work: Path, node: str, url: str, sim: str, clustered: bool) -> Path:
    store = f'[store]\nurl = "{cpu.with_app_name(url, node)}"\n' if url else ""
    # The lease rounds at their real-time defaults (renew every 5 s), not compressed with the
    # simulator's time: a renew round every 50 ms would measure the bench, not the daemon.
    cluster = (
        f'[cluster]\nenabled = true\nnode_id = "{node}"\nlease_ttl = {30 / SCALE}\n'
        f"renew_every = {5 / SCALE}\nfence_margin = {10 / SCALE}\n"
        f"takeover_delay = {5 / SCALE}\nacquire_rate = 100.0\n"
        if clustered
        else ""
    )
    path = work / f"{node}.toml"
    path.write_text(
        f"""
[daemon]
state_dir = "{work / node / "state"}"
runtime_dir = "{work / node / "run"}"
time_scale = {SCALE}
connect_rate = 1000.0

[queue]
max_size = 100000
pacing_interval = 0

[sim]
endpoint = "{sim}"
send_latency = 0

[connection]
timeout = 5000.0
keepalive = 2000.0

{store}{cluster}"""
    )
    return path


def _wait(pred: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:  # a daemon still starting
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _owned(url: str, names: list[str], ids: list[str]) -> list[list[str]]:
    """Per node, the instances whose lease it holds."""
    with psycopg.connect(url, autocommit=True) as c:
        owner = dict(c.execute("SELECT instance_id, owner FROM leases").fetchall())
    mine = [[i for i in ids if owner.get(i) == n] for n in names]
    if not all(mine):
        raise RuntimeError(f"a node owns no instance: {owner}")
    return mine


def run(
    url: str,
    nodes: int,
    instances: int,
    messages: int,
    senders: int,
    clustered: bool = True,
    local: bool = False,
) -> dict[str, float]:
    """`local`: each node is sent only messages for the instances it owns (no wake-up of another
    node), to tell the cost of a cross-node send from the cost of one more daemon."""
    work = Path(tempfile.mkdtemp(prefix="wzb", dir="/tmp"))
    sim = SimServerProcess(work, "sim", SCALE, "", 7)
    procs: list[subprocess.Popen[bytes]] = []
    names = [f"n{i + 1}" for i in range(nodes)]
    try:
        token = ""
        for k, name in enumerate(names):
            state = work / name / "state"
            if k:
                state.mkdir(parents=True, exist_ok=True)
                (state / "admin.token").write_text(token + "\n")
            cfg = _config(work, name, url, sim.endpoint, clustered and bool(url))
            log = open(work / f"{name}.log", "ab")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [*daemon_command(), "run", "--config", str(cfg)],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            if not k:
                tf = state / "admin.token"
                _wait(tf.exists, 30, "the admin token")
                token = tf.read_text().strip()
        endpoints = [f"ipc://{(work / n / 'run').resolve()}/control.sock" for n in names]
        for ep in endpoints:
            _wait(lambda ep=ep: Client(ep, token, timeout=5).call("ping")["pong"], 30, ep)
        with Client(endpoints[0], token, timeout=10) as c:
            ids = [
                c.call("instance.create", {"instance_id": f"b{i}", "driver": "sim"})["instance_id"]
                for i in range(instances)
            ]

            def started(iid: str) -> bool:
                try:
                    c.call("instance.start", {"instance_id": iid})
                    return True
                except ClientError:
                    return False

            for iid in ids:
                _wait(lambda iid=iid: started(iid), 60, f"{iid} started")
            _wait(
                lambda: (
                    sum(1 for x in c.call("instance.list")["instances"] if x["state"] == "online")
                    == instances
                ),
                60,
                "every instance online",
            )
        targets = _owned(url, names, ids) if local else [ids] * nodes
        accepted: list[str] = []
        lock = threading.Lock()
        per = messages // (nodes * senders)

        def sender(ep: str, mine: list[str], offset: int) -> None:
            with Client(ep, token, timeout=30) as cl:
                for k in range(per):
                    r = cl.call(
                        "message.send",
                        {
                            "instance_id": mine[(offset + k) % len(mine)],
                            "to": "6281234567890",
                            "text": f"m{offset}-{k}",
                        },
                    )
                    with lock:
                        accepted.append(r["message_id"])

        threads = [
            threading.Thread(target=sender, args=(ep, targets[j], 7919 * (j * senders + s)))
            for j, ep in enumerate(endpoints)
            for s in range(senders)
        ]
        meter = cpu.CpuMeter([p.pid for p in procs], sim.proc.pid, url)
        # Idle first: what the daemons and their backends burn per second with nothing to send
        # (lease rounds, timers), to tell a per-message cost from a per-daemon one.
        meter.start()
        time.sleep(IDLE_S)
        meter.stop()
        idle = meter.spent["daemons"] + meter.spent["pg ours"]
        meter.start()
        busy0, total0 = cpu_ticks()
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t_accept = time.monotonic() - t0
        want = set(accepted)

        def all_delivered() -> bool:
            _, log = sim.query()
            return want <= {e["message_id"] for e in log}

        _wait(all_delivered, 300, "every message delivered")
        t_done = time.monotonic() - t0
        busy1, total1 = cpu_ticks()
        meter.stop()
        return {
            **cpu.per_1000(meter, len(want)),
            "idle_daemons_pg_per_s": idle / IDLE_S,
            "busy_s": t_done,
            "cpu_busy": (busy1 - busy0) / max(1, total1 - total0),
            "load": os.getloadavg()[0],
            "accepted": len(accepted),
            "accepted_per_s": len(accepted) / t_accept,
            "dispatched_per_s": len(accepted) / t_done,
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        sim.stop()


def run_all(
    url: str, instances: int, messages: int, senders: int, nodes: list[int]
) -> list[tuple[str, dict[str, float]]]:
    """One SQLite daemon, one PostgreSQL daemon without [cluster], then `nodes` clustered, then
    those of more than one daemon again with every send given to the instance's owner."""
    rows = [("sqlite, 1 daemon", run("", 1, instances, messages, senders))]
    setups = [(0, False), *((n, False) for n in nodes), *((n, True) for n in nodes if n > 1)]
    for n, local in setups:  # 0: one daemon, no [cluster]
        with fresh_schema(url) as surl:
            name = f"postgresql, {n} daemon(s)" if n else "postgresql, 1, no cluster"
            name += ", to owner" if local else ""
            rows.append((name, run(surl, max(n, 1), instances, messages, senders, n > 0, local)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--instances", type=int, default=30)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--nodes", default="1,2,3")
    a = ap.parse_args(argv)
    rows = run_all(a.url, a.instances, a.messages, a.senders, [int(x) for x in a.nodes.split(",")])
    for name, r in rows:
        print(
            f"{name:34} accepted {r['accepted']:.0f}: {r['accepted_per_s']:8.1f} accepted/s, "
            f"{r['dispatched_per_s']:8.1f} dispatched/s, CPU {r['cpu_busy']:.0%} busy"
        )
    print("\n".join(cpu.report(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
