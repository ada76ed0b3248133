"""Issue 16's figures in one run: several daemons on one PostgreSQL, next to one SQLite daemon.

    python bench/cluster.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
        [--instances 30] [--messages 3000] [--senders 4] [--nodes 1,2,3]   # sends
        [--online 5000]                                                    # fleet start
        [--takeover 1000]                                                  # kill -9
        [--leases 1000]                                                    # lease SQL alone
        [--connect-rate 250] [--acquire-rate 250] [--lease-ttl 30] [--renew-every 5]
        [--fence-margin 10] [--takeover-delay 5]
        [--skip sends,online,takeover,leases]

Every daemon is a real `waz-actors run` process on the networked simulator; every PostgreSQL run
uses a fresh schema, dropped at the end. Phases (bench/cluster_sends.py, bench/cluster_fleet.py,
bench/cluster_leases.py tell how each is measured):
- sends: durable sends/s accepted and dispatched, one SQLite daemon, one PostgreSQL daemon
  without [cluster], then 1, 2 and 3 clustered daemons (`--senders` synchronous clients per
  daemon), then 2 and 3 again with each send given to the node owning its instance, with how
  busy the machine's CPUs were and who spent how many CPU seconds per 1,000 dispatched
  (bench/cluster_cpu.py);
- online: `--online` instances, spread over 3 daemons, from spawning them to all online;
- takeover: 3 daemons with `--takeover` instances each; one is killed with SIGKILL: time from
  the kill until every instance it ran is online on another node;
- leases: the lease SQL alone (renew round, acquire, takeover of `--leases` leases).
Goals (issue 16): 3 daemons dispatch at least 2x one daemon; 5,000 online in under 10 s; a
killed node's 1,000 instances back within lease expiry + one throttle gap (takeover_delay, plus
the one connection any owner needs: the simulator's 0.5 s).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "bench"))  # last: after the standard library
importlib.import_module("http.client")

fleet = importlib.import_module("cluster_fleet")
sends = importlib.import_module("cluster_sends")
leases = importlib.import_module("cluster_leases")
cpu = importlib.import_module("cluster_cpu")
common = importlib.import_module("_common")

PHASES = ("sends", "online", "takeover", "leases")


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def report_sends(rows: list[tuple[str, dict[str, float]]]) -> list[str]:
    out = ["sends (accepted/s, dispatched/s, machine CPU busy, load 1 min):"]
    for name, r in rows:
        out.append(
            f"  {name:34} {r['accepted_per_s']:7.0f} {r['dispatched_per_s']:7.0f}"
            f"   {r['cpu_busy']:4.0%}  {r['load']:.1f}"
        )
    by = dict(rows)
    one, three = by.get("postgresql, 1 daemon(s)"), by.get("postgresql, 3 daemon(s)")
    if one and three:
        x = three["dispatched_per_s"] / one["dispatched_per_s"]
        out.append(f"  goal: 3 daemons dispatch >= 2x one: {x:.2f}x  {_verdict(x >= 2)}")
    return out + cpu.report(rows)


def report_online(r: dict[str, Any], t: Any) -> list[str]:
    return [
        f"online: {r['instances']} instances over 3 daemons ({r['per_node']}), connect_rate "
        f"{t.connect_rate:g}/s and acquire_rate {t.acquire_rate:g}/s per daemon, sim connect "
        "latency 0.5 s",
        f"  start to all online {r['online_s']:.2f} s   goal < 10 s  "
        f"{_verdict(r['online_s'] < 10)}   (machine CPU {r['cpu_busy']:.0%} busy meanwhile)",
    ]


def report_takeover(r: dict[str, Any], t: Any) -> list[str]:
    # After the expiry a new owner waits takeover_delay (the throttle gap), then connects: one
    # connection (the simulator's 0.5 s) is the least any owner needs to be online again.
    goal = t.takeover_delay + fleet.SIM_CONNECT_LATENCY
    return [
        f"takeover: kill -9 of a node running {r['instances']} instances (3 daemons; lease_ttl "
        f"{t.lease_ttl:g} s, renew_every {t.renew_every:g} s, takeover_delay "
        f"{t.takeover_delay:g} s, connect_rate {t.connect_rate:g}/s)",
        f"  its leases expired {r['expiry_after_kill_s']:.2f} s after the kill; first back "
        f"{r['first_online_s']:.2f} s, all back {r['takeover_s']:.2f} s after the kill",
        f"  all back {r['after_expiry_s']:.2f} s after the expiry   goal <= takeover_delay + "
        f"one connect = {goal:g} s  {_verdict(r['after_expiry_s'] <= goal)}",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--instances", type=int, default=30, help="sends: instances")
    ap.add_argument("--messages", type=int, default=3000, help="sends: messages per setup")
    ap.add_argument("--senders", type=int, default=4, help="sends: clients per daemon")
    ap.add_argument("--nodes", default="1,2,3", help="sends: clustered daemon counts")
    ap.add_argument("--online", type=int, default=5000)
    ap.add_argument("--takeover", type=int, default=1000, help="instances per node")
    ap.add_argument("--leases", type=int, default=1000)
    ap.add_argument("--skip", default="", help=f"comma-separated, of {','.join(PHASES)}")
    fleet.add_throttle_flags(ap)
    a = ap.parse_args(argv)
    skip = {s for s in a.skip.split(",") if s}
    if skip - set(PHASES):
        ap.error(f"--skip: unknown phase(s) {sorted(skip - set(PHASES))}")
    t = fleet.throttles_from(a)
    lines = [common.machine_line(), _load() + " at the start"]
    print(lines[0], flush=True)
    if "sends" not in skip:
        rows = sends.run_all(
            a.url, a.instances, a.messages, a.senders, [int(x) for x in a.nodes.split(",")]
        )
        lines += report_sends(rows)
        print("\n".join(report_sends(rows)), flush=True)
    if "online" not in skip and a.online:
        part = [*report_online(fleet.run_online(a.url, a.online, t), t), "  " + _load()]
        lines += part
        print("\n".join(part), flush=True)
    if "takeover" not in skip and a.takeover:
        part = [*report_takeover(fleet.run_takeover(a.url, a.takeover, t), t), "  " + _load()]
        lines += part
        print("\n".join(part), flush=True)
    if "leases" not in skip and a.leases:
        print("lease SQL alone:", flush=True)
        leases.run(a.url, a.leases, 100, 50, 2.0)
    print("\n== summary\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
