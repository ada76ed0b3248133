"""CPU seconds per 1,000 dispatched messages, by who spent them (bench/cluster_sends.py's table).

The machine's CPU busy share says the box is saturated, not who pays per message. Per group of
processes this reads /proc/<pid>/stat before and after the sends:
- daemons: every daemon process and its descendants (driver hosts, workers, if any), found
  through /proc/<pid>/task/*/children at each reading;
- pg ours: the PostgreSQL backends serving the daemons (pg_stat_activity, by the
  application_name the bench puts in each daemon's store URL);
- pg all: every process whose comm is `postgres` (background writer, WAL writer, autovacuum,
  and the load of anyone else using the server meanwhile);
- sim: the simulator process; bench: this process (the sender threads and the delivery polls);
- and the transactions committed in the database per message (pg_stat_database: anyone's).

A group's reading is the sum over its live processes of utime + stime + cutime + cstime. A
process that exits between the readings and is reaped inside its group (a backend by the
postmaster) moves its whole total into the parent's cutime while its earlier share is in the
first reading, so the difference stays exact; only processes reaped outside the group are lost.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

CLK_TCK = os.sysconf("SC_CLK_TCK")
APP_PREFIX = "wzbench_"
GROUPS = ("daemons", "pg ours", "pg all", "sim", "bench")


def with_app_name(url: str, node: str) -> str:
    """`url` with an application_name naming the daemon, so its backends can be told apart."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}application_name={APP_PREFIX}{node}"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # Field 2 (comm) may contain spaces: split after its closing parenthesis.
    return [stat[stat.index("(") + 1 : stat.rindex(")")], *stat[stat.rindex(")") + 2 :].split()]


def cpu_seconds(pids: Iterable[int]) -> float:
    """utime + stime + cutime + cstime of the live ones among `pids`, in seconds."""
    ticks = 0
    for pid in set(pids):
        f = _stat_fields(pid)
        if f is not None:
            ticks += sum(int(x) for x in f[12:16])
    return ticks / CLK_TCK


def tree(root: int) -> set[int]:
    """`root` and its live descendants."""
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return seen


def postgres_pids() -> set[int]:
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            f = _stat_fields(int(d.name))
            if f is not None and f[0] == "postgres":
                out.add(int(d.name))
    return out


def commits(admin_url: str) -> int:
    """Transactions committed in the database so far, by anyone (pg_stat_database)."""
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as c:
        row = c.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def our_backends(admin_url: str) -> set[int]:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as c:
        rows = c.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s",
            (APP_PREFIX + "%",),
        ).fetchall()
    return {int(r[0]) for r in rows}


@dataclass
class CpuMeter:
    """Reads every group at start() and at stop(); `spent` is seconds per group in between."""

    daemons: list[int]
    sim: int
    admin_url: str  # "" without PostgreSQL
    spent: dict[str, float] = field(default_factory=dict)
    commits: int = 0  # in the database meanwhile, 0 without PostgreSQL
    _start: dict[str, float] = field(default_factory=dict)
    _commits: int = 0

    def _groups(self) -> dict[str, Callable[[], set[int]]]:
        pg = bool(self.admin_url)
        return {
            "daemons": lambda: set().union(*(tree(p) for p in self.daemons)),
            "pg ours": lambda: our_backends(self.admin_url) if pg else set(),
            "pg all": postgres_pids if pg else set,
            "sim": lambda: tree(self.sim),
            "bench": lambda: {os.getpid()},
        }

    def _read(self) -> dict[str, float]:
        return {name: cpu_seconds(pids()) for name, pids in self._groups().items()}

    def start(self) -> None:
        self._start = self._read()
        self._commits = commits(self.admin_url) if self.admin_url else 0

    def stop(self) -> None:
        end = self._read()
        self.spent = {k: end[k] - self._start[k] for k in GROUPS}
        if self.admin_url:
            # A busy backend reports its counts at most once a second, an idle one at once.
            time.sleep(1.1)
            self.commits = commits(self.admin_url) - self._commits


def per_1000(meter: CpuMeter, dispatched: int) -> dict[str, float]:
    """CPU seconds per 1,000 dispatched messages, per group, plus daemons + pg ours, and
    the database's commits per message."""
    spent, k = meter.spent, 1000 / max(1, dispatched)
    out = {f"cpu_{g.replace(' ', '_')}": spent.get(g, 0.0) * k for g in GROUPS}
    out["cpu_daemons_pg"] = out["cpu_daemons"] + out["cpu_pg_ours"]
    out["spent_daemons_pg"] = spent.get("daemons", 0.0) + spent.get("pg ours", 0.0)
    out["commits_per_msg"] = meter.commits / max(1, dispatched)
    return out


def report(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    """The per-message CPU table, and how daemons + their backends grow from 1 to n daemons."""
    out = [
        "  CPU s per 1,000 dispatched: daemons, pg ours, daemons+pg ours | pg all, sim, bench"
        " | idle daemons+pg ours CPU s/s, its share of daemons+pg ours | PG commits/message",
    ]
    for name, r in rows:
        idle_share = r["idle_daemons_pg_per_s"] * r["busy_s"] / max(1e-9, r["spent_daemons_pg"])
        out.append(
            f"  {name:34} {r['cpu_daemons']:6.2f} {r['cpu_pg_ours']:6.2f} "
            f"{r['cpu_daemons_pg']:6.2f} | {r['cpu_pg_all']:6.2f} {r['cpu_sim']:6.2f} "
            f"{r['cpu_bench']:6.2f} | {r['idle_daemons_pg_per_s']:5.3f} {idle_share:4.0%}"
            f" | {r['commits_per_msg']:5.2f}"
        )
    base = "postgresql, 1 daemon(s)"
    one = dict(rows).get(base)
    for name, r in rows:
        if one and name.startswith("postgresql, ") and name != base:
            out.append(
                f"  {name} vs 1 clustered: daemons+pg ours per message "
                f"{r['cpu_daemons_pg'] / max(1e-9, one['cpu_daemons_pg']):.2f}x "
                f"(daemons {r['cpu_daemons'] / max(1e-9, one['cpu_daemons']):.2f}x, "
                f"pg ours {r['cpu_pg_ours'] / max(1e-9, one['cpu_pg_ours']):.2f}x)"
            )
    return out
