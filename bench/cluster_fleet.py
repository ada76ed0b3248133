"""Three daemons on one PostgreSQL bringing a fleet online, and taking over a killed node's share.

Used by bench/cluster.py (the one command); runnable alone:

    python bench/cluster_fleet.py [--online 5000] [--takeover 1000] [--connect-rate 250]
        [--acquire-rate 250] [--lease-ttl 30] [--takeover-delay 5]

Every daemon is a real `waz-actors run` process on the networked simulator (time_scale 1, sim
connect latency 0.5 s as bench/scale.py), each in a fresh schema (dropped at the end). The
instances are created in the database before the daemons start (desired running, as a fleet
restarted after an outage), so the clock measures placement + connecting, not 5,000 creates.
Progress is read from PostgreSQL, not from the daemons' control sockets (5,000-row
instance.list polls would load the machine being measured):
- online: time from spawning the daemons until every instance's saved state is `online`;
- takeover: `kill -9` of one node once every instance is online; time until every instance it
  ran is `online` again (state changed after the kill) under another node's lease.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # last: after the standard library

import importlib  # noqa: E402

import psycopg  # noqa: E402

from waz_actors.control.auth import new_token  # noqa: E402
from waz_actors.store import Store  # noqa: E402
from waz_actors.store.records import InstanceRecord  # noqa: E402

importlib.import_module("http.client")
SimServerProcess = importlib.import_module("chaos").SimServerProcess


TRACE = bool(os.environ.get("WAZ_BENCH_TRACE"))
SIM_CONNECT_LATENCY = 0.5  # [sim] connect_latency, left at its default (as bench/scale.py)


@dataclass(frozen=True)
class Throttles:
    """What an operator of a few thousand numbers would set (docs/benchmarks.md says why)."""

    connect_rate: float = 250.0  # [daemon] connect_rate, per daemon
    acquire_rate: float = 250.0  # [cluster] acquire_rate, per daemon
    lease_ttl: float = 30.0  # [cluster] defaults below
    renew_every: float = 5.0
    fence_margin: float = 10.0
    takeover_delay: float = 5.0


def daemon_command() -> list[str]:
    """`python -m waz_actors`, or under a sampling profiler (a script taking the CLI's arguments)
    named by WAZ_BENCH_PROFILER."""
    wrapper = os.environ.get("WAZ_BENCH_PROFILER")
    return [sys.executable, wrapper] if wrapper else [sys.executable, "-m", "waz_actors"]


def cpu_ticks() -> tuple[int, int]:
    """The machine's (busy, total) CPU ticks so far (/proc/stat), every process counted."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@contextlib.contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new schema on `url`; yields a URL whose search_path is it; dropped afterwards."""
    schema = "waz_bench_" + secrets.token_hex(6)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options={urllib.parse.quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


def create_fleet(url: str, n: int) -> list[str]:
    """`n` sim instances, desired running, committed through the store (many writers at once:
    the group commit takes them in batches)."""
    now = time.time()
    ids = [f"i{k:05d}" for k in range(n)]
    store = Store(url)
    store.open()
    try:
        recs = [
            InstanceRecord(
                instance_id=i,
                tenant="bench",
                driver="sim",
                settings={},
                desired="running",
                state="stopped",
                since=now,
                jid=None,
                last_code=None,
                last_reason=None,
                created_at=now,
            )
            for i in ids
        ]
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(store.create_instance, recs))
    finally:
        store.close()
    return ids


def node_config(work: Path, node: str, url: str, sim: str, t: Throttles, token: str) -> Path:
    state = work / node / "state"
    state.mkdir(parents=True, exist_ok=True)
    # The same admin token on every node: each registers it (cluster-wide tokens).
    (state / "admin.token").write_text(token + "\n")
    os.chmod(state / "admin.token", 0o600)
    path = work / f"{node}.toml"
    path.write_text(
        f"""
[daemon]
state_dir = "{state}"
runtime_dir = "{work / node / "run"}"
connect_rate = {t.connect_rate}
log_level = "WARNING"

[sim]
endpoint = "{sim}"

[store]
url = "{url}"

[cluster]
enabled = true
node_id = "{node}"
lease_ttl = {t.lease_ttl}
renew_every = {t.renew_every}
fence_margin = {t.fence_margin}
takeover_delay = {t.takeover_delay}
acquire_rate = {t.acquire_rate}
"""
    )
    return path


class Fleet:
    """`nodes` daemons on one schema and one simulator."""

    def __init__(self, url: str, nodes: int, t: Throttles) -> None:
        self.url = url
        self.work = Path(tempfile.mkdtemp(prefix="wzf", dir="/tmp"))
        self.sim = SimServerProcess(self.work, "sim", 1.0, "", 7)
        token = new_token()
        self.names = [f"n{k + 1}" for k in range(nodes)]
        self.configs = [
            node_config(self.work, n, url, self.sim.endpoint, t, token) for n in self.names
        ]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.db = psycopg.connect(url, autocommit=True)
        self.killed: set[str] = set()

    def start(self) -> None:
        for name, cfg in zip(self.names, self.configs, strict=True):
            log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115
            self.procs[name] = subprocess.Popen(
                [*daemon_command(), "run", "--config", str(cfg)],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def one(self, sql: str, params: Any = None) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def online(self) -> int:
        """Instances online under a live lease (a handed-over one shows its last owner's
        `online` until its new owner saves `connecting`: the lease, taken first, tells)."""
        return int(
            self.one(
                "SELECT count(*) FROM instances i JOIN leases l USING (instance_id)"
                " WHERE i.state = 'online' AND l.owner IS NOT NULL AND l.expires_at > now()"
            )
        )

    def last_online(self, ids: list[str] | None = None) -> float:
        """The wall time (the daemons' clock) the last of `ids` (None: all) went online."""
        if ids is None:
            return float(self.one("SELECT max(since) FROM instances"))
        sql = "SELECT max(since) FROM instances WHERE instance_id = ANY(%s)"
        return float(self.one(sql, (ids,)))

    def wait(self, pred: Any, timeout: float, what: str, every: float = 0.1) -> float:
        """Poll; the monotonic time the predicate first held."""
        end = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < end:
            if TRACE and time.monotonic() - last >= 1.0:
                last = time.monotonic()
                held = self.one("SELECT count(*) FROM leases WHERE expires_at > now()")
                states = self.db.execute("SELECT state, count(*) FROM instances GROUP BY 1")
                print(
                    f"  {time.strftime('%H:%M:%S')} leases held {held}, online "
                    f"{self.online()}, states {states.fetchall()}",
                    flush=True,
                )
            for name, p in self.procs.items():
                if p.poll() is not None and name not in self.killed:
                    raise RuntimeError(f"{name} exited ({p.returncode}); see {self.work}")
            if pred():
                return time.monotonic()
            time.sleep(every)
        raise TimeoutError(f"timed out waiting for {what}; logs in {self.work}")

    def kill(self, name: str) -> None:
        self.killed.add(name)
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        self.db.close()
        self.sim.stop()


def run_online(url: str, n: int, t: Throttles, nodes: int = 3) -> dict[str, Any]:
    """Time from spawning `nodes` daemons until all `n` instances are online."""
    with fresh_schema(url) as surl:
        create_fleet(surl, n)
        fleet = Fleet(surl, nodes, t)
        try:
            busy0, total0 = cpu_ticks()
            t0 = time.time()
            fleet.start()
            fleet.wait(lambda: fleet.online() >= n, 300, f"{n} online")
            busy1, total1 = cpu_ticks()
            done = fleet.last_online()
            per = fleet.db.execute(
                "SELECT owner, count(*) FROM leases GROUP BY owner ORDER BY owner"
            ).fetchall()
            return {
                "instances": n,
                "online_s": done - t0,
                "per_node": dict(per),
                "cpu_busy": (busy1 - busy0) / max(1, total1 - total0),
            }
        finally:
            fleet.stop()


def run_takeover(url: str, per_node: int, t: Throttles, nodes: int = 3) -> dict[str, Any]:
    """`nodes` daemons share `per_node * nodes` instances; one is killed with SIGKILL: time
    from the kill until every instance it ran is online again on another node."""
    n = per_node * nodes
    with fresh_schema(url) as surl:
        create_fleet(surl, n)
        fleet = Fleet(surl, nodes, t)
        try:
            fleet.start()
            fleet.wait(lambda: fleet.online() >= n, 300, f"{n} online")
            # Placement settled: every node holds its fair share.
            victim = fleet.names[-1]
            fleet.wait(
                lambda: (
                    fleet.one("SELECT count(*) FROM leases WHERE owner = %s", (victim,)) == per_node
                ),
                120,
                f"{victim} holding {per_node}",
            )
            ids = [
                r[0]
                for r in fleet.db.execute(
                    "SELECT instance_id FROM leases WHERE owner = %s", (victim,)
                ).fetchall()
            ]
            time.sleep(1.0)  # settle the start-up's writes
            t_kill_wall = time.time()
            t_kill = time.monotonic()
            expires_in = float(
                fleet.one(
                    "SELECT extract(epoch FROM max(expires_at) - now())::float8 FROM leases"
                    " WHERE owner = %s",
                    (victim,),
                )
            )
            fleet.kill(victim)

            def back() -> bool:
                got = fleet.one(
                    "SELECT count(*) FROM instances i JOIN leases l USING (instance_id)"
                    " WHERE i.instance_id = ANY(%s) AND i.state = 'online' AND i.since > %s"
                    " AND l.owner <> %s AND l.expires_at > now()",
                    (ids, t_kill_wall, victim),
                )
                return int(got) == len(ids)

            fleet.wait(back, t.lease_ttl + 300, f"{len(ids)} taken over")
            done = t_kill + fleet.last_online(ids) - t_kill_wall
            first = (
                t_kill
                + float(
                    fleet.one(
                        "SELECT min(since) FROM instances WHERE instance_id = ANY(%s)", (ids,)
                    )
                )
                - t_kill_wall
            )
            return {
                "instances": len(ids),
                "expiry_after_kill_s": expires_in,
                "first_online_s": first - t_kill,
                "takeover_s": done - t_kill,
                "after_expiry_s": done - t_kill - expires_in,
            }
        finally:
            fleet.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--online", type=int, default=5000)
    ap.add_argument("--takeover", type=int, default=1000)
    add_throttle_flags(ap)
    a = ap.parse_args(argv)
    t = throttles_from(a)
    if a.online:
        print(run_online(a.url, a.online, t))
    if a.takeover:
        print(run_takeover(a.url, a.takeover, t))
    return 0


def add_throttle_flags(ap: Any) -> None:
    d = Throttles()
    ap.add_argument("--connect-rate", type=float, default=d.connect_rate)
    ap.add_argument("--acquire-rate", type=float, default=d.acquire_rate)
    ap.add_argument("--lease-ttl", type=float, default=d.lease_ttl)
    ap.add_argument("--renew-every", type=float, default=d.renew_every)
    ap.add_argument("--fence-margin", type=float, default=d.fence_margin)
    ap.add_argument("--takeover-delay", type=float, default=d.takeover_delay)


def throttles_from(a: Any) -> Throttles:
    return Throttles(
        a.connect_rate,
        a.acquire_rate,
        a.lease_ttl,
        a.renew_every,
        a.fence_margin,
        a.takeover_delay,
    )


if __name__ == "__main__":
    sys.exit(main())
