"""SIGTERM while hundreds of messages are in flight, then a restart: every message is
delivered exactly once. The fake WhatsApp is a separate sim server process, so it outlives the
daemon the way WhatsApp does."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.service.daemon_proc import DaemonProc, config_text
from tests.waiting import wait_until


def test_sigterm_mid_flight_then_restart_delivers_exactly_once(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/sim.sock"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waz_actors",
            "sim",
            "serve",
            "--endpoint",
            endpoint,
            "--time-scale",
            "0.01",
            "--send-latency",
            "20",
            "--seed",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    procs: list[DaemonProc] = []
    try:
        assert "listening" in (sim.stdout.readline() if sim.stdout else "")
        ids_ = ["a", "b", "c"]
        extra = f'max_size = 200\npacing_interval = 5.0\n[sim]\nendpoint = "{endpoint}"'
        d = DaemonProc(tmp_path, config_text(ids_, extra=extra))
        procs.append(d)
        d.notify.wait_for("READY=1")
        ids: list[str] = []
        with d.client() as c:
            wait_until(lambda: {i["state"] for i in c.instance_list()} == {"online"}, timeout=20.0)
            for n in range(300):
                ids.append(c.message_send(ids_[n % 3], "6281234567890", text=f"m{n}")["message_id"])
            wait_until(
                lambda: c.daemon_status()["queue"]["in_flight"] > 0, what="in flight", timeout=20.0
            )
        d.signal(signal.SIGTERM)
        assert d.wait(60) == 0

        d2 = DaemonProc(tmp_path, config_text(ids_, extra=extra.replace("5.0", "0.5")))
        procs.append(d2)
        d2.notify.wait_for("READY=1")
        with d2.client() as c:

            def all_sent() -> bool:
                return all(c.message_get(i)["status"] == "sent" for i in ids)

            wait_until(all_sent, timeout=60, what="every message sent")
            stats = c.sim_stats()
        totals = stats["totals"]
        assert totals["delivered"] == 300
        assert totals["duplicates"] == 0
        assert totals["conflicts_caused_by_ours"] == 0
    finally:
        for p in procs:
            p.close()
        sim.terminate()
        sim.wait(10)
