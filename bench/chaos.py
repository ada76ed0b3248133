"""Chaos run: the daemon against a faulty fake WhatsApp, killed with -9 at random, vs the seeds.

    .venv/bin/python bench/chaos.py [--instances 20] [--messages 2000] [--kills 3]
        [--time-scale 0.01] [--duration 60] [--faults conflict=2,disconnect=4,send_fail=6,ban=0.05]
        [--seed 1] [--no-baseline] [--json]

Each side gets its own simulator server (`waz-actors sim serve`, tcp on
127.0.0.1) with the same seed and fault rates (--faults: per instance and daemon hour, handed to
the server multiplied by the instance count; one daemon second lasts --time-scale real
seconds), the same instances, the same message plan (times and instances) and the same
`kill -9` moments:

  ours      a `waz-actors run` subprocess; messages go through the control socket with an
            idempotency key, retried while the daemon is down (unreachable, `shutting_down`):
            a message is accepted when the daemon answered ok with a message_id. After the plan
            the daemon drains (until nothing is pending but on banned or logged-out instances).
  baseline  bench/baseline.py, the seeds' approach (30 s cron, reconnect at once after a
            conflict, no queue): a send while it is down or while the session is not open fails.

Figures: accepted, delivered, held (still queued on a banned/logged-out instance), failed
(reported to the client as failed), lost (accepted, never delivered, never reported), duplicates
the sim dropped by id and duplicates delivered (a message delivered under two ids, or a delivery
nobody accepted), conflicts caused by the daemon (two of its own sessions fought) and injected,
connection attempts per instance-hour of daemon time, availability (share of instance-time with a
live session, daemon down counts as offline), delivery success and p50/p99 latency from accept to
delivered (real and daemon seconds).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    ROOT,
    Client,
    ClientError,
    DaemonProcess,
    Unreachable,
    config_toml,
    machine_line,
)
from chaos_figures import HELD_STATES, figures, report

from waz_actors.drivers.sim.faults import parse_fault_rates
from waz_actors.drivers.sim.remote import RemoteSimNetwork

DEFAULT_FAULTS = "conflict=2,disconnect=4,send_fail=6,ban=0.05"


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    instances: list[str]
    sends: list[tuple[int, float, str]]  # (number, real seconds after start, instance id)
    kills: list[float]  # real seconds after start
    end: float  # real seconds after start: the plan (sends, kills) is over
    time_scale: float


def make_plan(
    instances: int, messages: int, kills: int, duration: float, time_scale: float, seed: int
) -> Plan:
    """Sends spread over the first 80% of the run, kills at random moments at least 1.5 s apart."""
    if instances < 1 or messages < 0 or kills < 0:
        raise ValueError("instances must be >= 1, messages and kills >= 0")
    if duration <= 0 or time_scale <= 0:
        raise ValueError("duration and time_scale must be > 0")
    rnd = random.Random(seed)
    ids = [f"c{n:04d}" for n in range(instances)]
    window = 0.8 * duration
    offsets = sorted(rnd.uniform(0, window) for _ in range(messages))
    sends = [(n, t, rnd.choice(ids)) for n, t in enumerate(offsets)]
    gap = 1.5
    if kills and (kills - 1) * gap > 0.7 * duration:
        raise ValueError(f"{kills} kills do not fit {duration:g} s (need {gap:g} s apart)")
    kill_times: list[float] = []
    while len(kill_times) < kills:
        t = rnd.uniform(0.1 * duration, 0.8 * duration)
        if all(abs(t - k) >= gap for k in kill_times):
            kill_times.append(t)
    return Plan(ids, sends, sorted(kill_times), duration, time_scale)


# --- processes --------------------------------------------------------------------------------


class SimServerProcess:
    """`waz-actors sim serve` on a free loopback port, read from its banner."""

    def __init__(self, work: Path, name: str, time_scale: float, faults: str, seed: int) -> None:
        self.log_path = work / f"sim-{name}.log"
        cmd = [
            sys.executable,
            "-m",
            "waz_actors",
            "sim",
            "serve",
            "--endpoint",
            "tcp://127.0.0.1:*",
            "--time-scale",
            repr(time_scale),
            "--faults",
            faults,
            "--seed",
            str(seed),
        ]
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the banner or exit
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"sim server did not start: {line!r} {self.log_path.read_text()}")
        self.endpoint = line.rsplit(" ", 1)[1].strip()

    def query(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        net = RemoteSimNetwork(self.endpoint, request_timeout=30.0)
        try:
            return net.stats(), net.delivered_log()
        finally:
            net.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _sleep_until(t: float) -> None:
    """Plan time, not synchronisation: the schedule says when the next event happens."""
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


# --- ours -------------------------------------------------------------------------------------


class Sender(threading.Thread):
    """Sends the plan's messages through the control socket, retrying while the daemon is down."""

    def __init__(self, daemon: DaemonProcess, plan: Plan, start: float, run_id: str) -> None:
        super().__init__(name="sender", daemon=True)
        self.daemon = daemon
        self.plan = plan
        self.start_time = start
        self.run_id = run_id
        self.accepted: dict[int, tuple[str, float]] = {}  # number -> (message id, accept time)
        self.retries = 0
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        client: Client | None = None
        for number, offset, instance_id in self.plan.sends:
            _sleep_until(self.start_time + offset)
            while True:
                try:
                    if client is None:
                        client = Client(self.daemon.endpoint, self.daemon.token(), 1.0, retries=0)
                    r = client.message_send(
                        instance_id,
                        "6281234567890",
                        text=f"chaos #{number}",
                        idempotency_key=f"{self.run_id}-{number}",
                    )
                    self.accepted[number] = (r["message_id"], time.time())
                    break
                except (Unreachable, OSError):
                    pass
                except ClientError as e:
                    if e.code not in ("shutting_down", "busy", "unauthorized"):
                        self.errors[e.code] += 1  # a refusal is an answer: not accepted
                        break
                self.retries += 1
                if client is not None:
                    client.close()
                    client = None
                time.sleep(0.05)  # the daemon is down or restarting: poll for it
        if client is not None:
            client.close()


def _pending_ids(db: Path, ids: list[str]) -> dict[str, str]:
    """message id -> status for every accepted message the store still holds as pending."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT message_id, instance_id, status FROM messages "
            "WHERE status IN ('queued', 'sending')"
        ).fetchall()
    finally:
        conn.close()
    wanted = set(ids)
    return {mid: inst for mid, inst, _ in rows if mid in wanted}


def _statuses(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(conn.execute("SELECT message_id, status FROM messages").fetchall())
    finally:
        conn.close()


def _state_changes(db: Path) -> list[tuple[float, str, bool]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT body FROM events WHERE topic LIKE 'instance.%.state' ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    out = []
    for (body,) in rows:
        b = json.loads(body)
        out.append((float(b["time"]), str(b["instance_id"]), b["state"] == "online"))
    return out


def network_rates(faults: str, instances: int) -> str:
    """Per instance-hour rates (what --faults means here) as the server's network-wide rates."""
    rates = parse_fault_rates(faults)
    return ",".join(f"{kind}={rate * instances:g}" for kind, rate in rates.items())


def run_ours(work: Path, plan: Plan, faults: str, seed: int, drain: float) -> dict[str, Any]:
    sim = SimServerProcess(
        work, "ours", plan.time_scale, network_rates(faults, len(plan.instances)), seed
    )
    cfg = work / "ours.toml"
    cfg.write_text(
        config_toml(
            {
                "daemon": {"time_scale": plan.time_scale, "shutdown_timeout": 5.0},
                "sim": {"endpoint": sim.endpoint},
            },
            [{"id": iid, "driver": "sim", "tenant": "chaos"} for iid in plan.instances],
        )
    )
    daemon = DaemonProcess(cfg, work / "ours-state", work / "ours-run")
    kills: list[float] = []
    restarts: list[float] = []
    try:
        start = time.time()
        daemon.start()
        daemon.wait_ready(30)
        sender = Sender(daemon, plan, start, f"chaos-{seed}")
        sender.start()
        for offset in plan.kills:
            _sleep_until(start + offset)
            daemon.kill9()
            kills.append(time.time())
            t0 = time.monotonic()
            daemon.start()
            daemon.wait_ready(30)
            restarts.append(time.monotonic() - t0)
        _sleep_until(start + plan.end)
        sender.join(max(5.0, drain))
        plan_end = time.time()
        drained = _drain(daemon, sender, drain)
        daemon.stop(30)
        stats, log = sim.query()
    finally:
        if daemon.alive():
            daemon.kill9()
        sim.stop()
    db = daemon.state_dir / "waz.db"
    accepted = {n: mid for n, (mid, _) in sender.accepted.items()}
    accept_time = {mid: t for mid, t in sender.accepted.values()}
    statuses = _statuses(db)
    inst_states = _final_states(db)
    by_id = {mid: n for n, mid in accepted.items()}
    out = figures(
        plan,
        accepted=by_id,
        accept_time=accept_time,
        stats=stats,
        log=log,
        changes=_state_changes(db),
        kills=kills,
        window=(start, plan_end),
        status_of=lambda mid: statuses.get(mid, "missing"),
        instance_state=inst_states,
        instance_of={accepted[n]: inst for n, _, inst in plan.sends if n in accepted},
    )
    out.update(
        side="ours",
        kills=len(kills),
        restart_to_ready_s=[round(r, 3) for r in restarts],
        send_retries=sender.retries,
        send_refusals=dict(sender.errors),
        drained=drained,
        daemon_log=str(daemon.log_path),
    )
    return out


def _final_states(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(conn.execute("SELECT instance_id, state FROM instances").fetchall())
    finally:
        conn.close()


def _drain(daemon: DaemonProcess, sender: Sender, timeout: float) -> bool:
    """Wait until every accepted message is final or held on a banned/logged-out instance."""
    db = daemon.state_dir / "waz.db"
    ids = [mid for mid, _ in sender.accepted.values()]
    client = daemon.wait_ready(30)
    deadline = time.monotonic() + timeout
    try:
        while True:
            pending = _pending_ids(db, ids)
            if pending:
                states = {i["instance_id"]: i["state"] for i in client.instance_list()}
                if all(states.get(inst) in HELD_STATES for inst in pending.values()):
                    return True
            else:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)  # polling the store: there is no "queue empty" event to wait on
    finally:
        client.close()


# --- baseline ---------------------------------------------------------------------------------


def run_baseline(work: Path, plan: Plan, faults: str, seed: int) -> dict[str, Any]:
    rates = network_rates(faults, len(plan.instances))
    sim = SimServerProcess(work, "baseline", plan.time_scale, rates, seed)
    plan_path = work / "baseline-plan.json"
    record = work / "baseline.jsonl"
    start = time.time() + 0.3  # the process needs a moment to start before the first send
    plan_path.write_text(
        json.dumps(
            {
                "time_scale": plan.time_scale,
                "start": start,
                "end": plan.end,
                "instances": plan.instances,
                "sends": plan.sends,
            }
        )
    )
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "baseline.py"),
        "--endpoint",
        sim.endpoint,
        "--plan",
        str(plan_path),
        "--out",
        str(record),
    ]
    log = open(work / "baseline.log", "ab")  # noqa: SIM115 - closed in finally
    kills: list[float] = []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        for offset in plan.kills:
            _sleep_until(start + offset)
            proc.kill()
            proc.wait(10)
            kills.append(time.time())
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        proc.wait(plan.end + 60)
        plan_end = time.time()
        # The seeds have no queue, so nothing drains: answers still in flight have a moment.
        time.sleep(min(1.0, 50 * plan.time_scale))
        stats, dlog = sim.query()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
        sim.stop()
    facts = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    accepted = {f["id"]: f["n"] for f in facts if f["k"] == "accepted"}
    accept_time = {f["id"]: f["t"] for f in facts if f["k"] == "accepted"}
    results = {f["id"]: f["ok"] for f in facts if f["k"] == "result"}
    changes = [(f["t"], f["i"], f["online"]) for f in facts if f["k"] == "state"]
    out = figures(
        plan,
        accepted=accepted,
        accept_time=accept_time,
        stats=stats,
        log=dlog,
        changes=changes,
        kills=kills,
        window=(start, plan_end),
        # The seeds report a failed send as failed; everything else was believed sent.
        status_of=lambda mid: "failed" if results.get(mid) is False else "sent",
        instance_state={},
        instance_of={f["id"]: f["i"] for f in facts if f["k"] == "accepted"},
    )
    out.update(
        side="baseline",
        kills=len(kills),
        refused=sum(1 for f in facts if f["k"] == "refused"),
        not_attempted=len(plan.sends)
        - len(accepted)
        - sum(1 for f in facts if f["k"] == "refused"),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--instances", type=int, default=20)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--time-scale", type=float, default=0.01, help="real s per daemon s")
    p.add_argument("--duration", type=float, default=60.0, help="real seconds of plan")
    p.add_argument("--faults", default=DEFAULT_FAULTS, help="rates per instance and daemon hour")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--drain", type=float, default=60.0, help="real seconds to drain at most")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--dir", help="keep the work files here (default: a temporary directory)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    try:
        parse_fault_rates(a.faults)
        plan = make_plan(a.instances, a.messages, a.kills, a.duration, a.time_scale, a.seed)
    except ValueError as e:
        p.error(str(e))
    res = run(plan, a.faults, a.seed, a.drain, baseline=not a.no_baseline, work_dir=a.dir)
    res["params"] = {**vars(a)}
    print(json.dumps(res, indent=2, default=str) if a.json else report(res))
    return 0


def run(
    plan: Plan,
    faults: str,
    seed: int,
    drain: float,
    *,
    baseline: bool = True,
    work_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Both sides, one after the other (so they do not compete for the CPU)."""
    import tempfile

    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="waz-chaos-")
        work = Path(tmp)
    else:
        work = Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"machine": machine_line(), "work_dir": str(work)}
    res["ours"] = run_ours(work, plan, faults, seed, drain)
    if baseline:
        res["baseline"] = run_baseline(work, plan, faults, seed)
    res["plan"] = {k: v for k, v in asdict(plan).items() if k != "sends"}
    return res


if __name__ == "__main__":
    sys.exit(main())
