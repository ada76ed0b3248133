"""A campaign of a few hundred recipients over three instances of a networked sim (`waz-actors
sim serve`, so its count survives the daemon), with faults, and two `kill -9` of a real daemon
subprocess: every recipient gets exactly one message, the counts add up, the campaign ends
`done`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import chaos  # noqa: E402

from tests.service.daemon_proc import DaemonProc, config_text  # noqa: E402
from tests.waiting import wait_until  # noqa: E402
from waz_actors.control.client import Client  # noqa: E402

pytestmark = pytest.mark.timeout(240)
N = 300
IDS = ["k1", "k2", "k3"]
SCALE = 0.01


def _daemon(tmp: Path, endpoint: str) -> DaemonProc:
    # Transient faults only (the sim's schedule), retries to spare: every recipient is sent.
    extra = "pacing_interval = 8.0\nmax_retries = 10\n[sim]\n" + f'endpoint = "{endpoint}"\n'
    d = DaemonProc(tmp, config_text(IDS, extra=extra, time_scale=SCALE))
    d.notify.wait_for("READY=1", timeout=60)
    return d


def test_exactly_one_message_per_recipient_across_two_kill9(tmp_path: Path) -> None:
    faults = chaos.network_rates("disconnect=40,conflict=4,send_fail=30", len(IDS))
    sim = chaos.SimServerProcess(tmp_path, "camp", SCALE, faults, seed=11)
    procs: list[DaemonProc] = []
    try:
        d = _daemon(tmp_path, sim.endpoint)
        procs.append(d)
        rows = [{"to": f"6281{i:08d}1", "vars": {"n": str(i)}} for i in range(N)]
        with d.client(timeout=30) as c:
            wait_until(lambda: all(c.instance_get(i)["state"] == "online" for i in IDS), 30)
            cid = c.campaign_create("kill", IDS, text="{Halo|Hai} {n}", recipients=rows)[
                "campaign_id"
            ]
            c.campaign_start(cid)
        for threshold in (N // 4, N // 2):
            with procs[-1].client(timeout=10) as c:

                def sent(c: Client = c, at: int = threshold) -> bool:
                    counts = c.campaign_get(cid)["counts"]
                    return int(counts["sent"]) + int(counts["queued"]) >= at

                wait_until(sent, timeout=90)
            procs[-1].signal(signal.SIGKILL)
            assert procs[-1].wait(10) == -signal.SIGKILL
            procs.append(_daemon(tmp_path, sim.endpoint))
        with procs[-1].client(timeout=10) as c:
            wait_until(lambda: c.campaign_get(cid)["state"] == "done", timeout=150)
            got = c.campaign_get(cid)
            report = list(c.campaign_report(cid))
        counts = got["counts"]
        assert sum(counts.values()) == N and counts["pending"] == counts["queued"] == 0
        assert counts["sent"] + counts["failed"] + counts["cancelled"] == N
        _, log = sim.query()
        to = [entry["to"] for entry in log]
        assert len(to) == len(set(to)), "a recipient got two messages"
        sent_numbers = {r["to"] for r in report if r["status"] == "sent"}
        assert {t.split("@")[0] for t in to} == sent_numbers
        assert len(to) == counts["sent"] == N, (counts, len(to))
    finally:
        for p in procs:
            p.close()
        sim.stop()
