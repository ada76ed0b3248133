"""The daemon as systemd runs it: notify protocol, watchdog, signals, reload, drain.

Each test runs the real `waz-actors run` as a subprocess with a unix datagram socket standing
in for systemd, and talks to it through the real control socket.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.service.daemon_proc import DaemonProc, config_text
from tests.waiting import wait_until


@pytest.fixture
def daemon_factory(tmp_path: Path):
    procs: list[DaemonProc] = []

    def make(text: str, **kw) -> DaemonProc:
        p = DaemonProc(tmp_path, text, **kw)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.close()


def states(c) -> dict[str, str]:
    return {i["instance_id"]: i["state"] for i in c.instance_list()}


def test_ready_only_after_ping_and_status_follows_the_fleet(daemon_factory) -> None:
    d = daemon_factory(config_text(["a", "b"]))
    d.notify.wait_for("READY=1")
    # READY means the control socket answers now, with the instances loaded.
    with d.client(timeout=1.0) as c:
        assert c.ping()["pong"] is True
        assert set(states(c)) == {"a", "b"}
        wait_until(lambda: set(states(c).values()) == {"online"}, what="online", timeout=20.0)
    wait_until(
        lambda: any("2 online" in s for s in d.notify.lines("STATUS=")), what="STATUS", timeout=20.0
    )
    assert d.notify.lines("READY=1") == ["READY=1"]


def test_watchdog_stops_while_the_supervisor_is_wedged(daemon_factory) -> None:
    d = daemon_factory(config_text(["a"]), watchdog_usec=600_000)
    d.notify.wait_for("READY=1")
    d.notify.wait_for("WATCHDOG=1", count=3)
    with d.client() as c:
        c.sim_fault("a", "wedge_supervisor", seconds=4.0)
    t0 = time.monotonic()
    time.sleep(0.0)  # nothing to wait for: the check below looks at the notify log afterwards
    resumed = d.notify.wait_for(
        "WATCHDOG=1", count=len(d.notify.times("WATCHDOG=1")) + 1, timeout=15
    )
    pings = [t for t in d.notify.times("WATCHDOG=1") if t0 + 1.5 < t < t0 + 3.5]
    assert pings == [], "WATCHDOG=1 was sent while the supervisor was wedged"
    assert resumed > t0 + 3.5  # and it came back once the supervisor answered again


def test_sigterm_drains_and_exits_0_with_nothing_lost(daemon_factory) -> None:
    d = daemon_factory(config_text(["a", "b"], extra="pacing_interval = 20.0"))
    d.notify.wait_for("READY=1")
    ids = []
    with d.client() as c:
        wait_until(lambda: set(states(c).values()) == {"online"}, what="online", timeout=20.0)
        for n in range(150):
            ids.append(
                c.message_send("a" if n % 2 else "b", "6281234567890", text=f"m{n}")["message_id"]
            )
    d.signal(signal.SIGTERM)
    assert d.wait(30) == 0
    assert "STOPPING=1" in d.notify.lines("STOPPING")
    assert d.notify.lines("EXTEND_TIMEOUT_USEC=")
    # Every accepted message is in the store: sent, or queued for the next start; none
    # left half-sent.
    from waz_actors.store import Store

    s = Store(d.state / "waz.db")
    s.open()
    try:
        got = [s.get_message(i).status for i in ids]
    finally:
        s.close()
    assert len(got) == 150 and set(got) <= {"sent", "queued"}
    assert "queued" in got  # the drain really cut a busy queue short


def test_sighup_adds_and_removes_instances_alone(daemon_factory) -> None:
    d = daemon_factory(config_text(["keep", "gone"]))
    d.notify.wait_for("READY=1")
    with d.client() as c:
        wait_until(lambda: set(states(c).values()) == {"online"}, what="online", timeout=20.0)
        keep_since = c.instance_get("keep")["since"]
        d.config.write_text(config_text(["keep", "new"]))
        d.signal(signal.SIGHUP)
        d.notify.wait_for("RELOADING=1")
        d.notify.wait_for("READY=1", count=2)
        wait_until(lambda: states(c).get("new") == "online", what="new online", timeout=20.0)
        wait_until(lambda: states(c).get("gone") == "stopped", what="gone stopped", timeout=20.0)
        assert c.instance_get("keep")["since"] == keep_since  # untouched
        assert states(c)["keep"] == "online"


def test_sighup_with_a_broken_file_keeps_the_old_config(daemon_factory) -> None:
    d = daemon_factory(config_text(["a"]))
    d.notify.wait_for("READY=1")
    with d.client() as c:
        wait_until(lambda: states(c).get("a") == "online", what="online", timeout=20.0)
        d.config.write_text("[daemon\nbroken = \n")
        d.signal(signal.SIGHUP)
        d.notify.wait_for("READY=1", count=2)
        wait_until(lambda: "reload rejected" in d.log_text(), what="the log line", timeout=20.0)
        assert states(c) == {"a": "online"}
        assert c.ping()["pong"] is True
    assert d.proc.poll() is None


def test_sigusr1_logs_every_thread(daemon_factory) -> None:
    d = daemon_factory(config_text(["a"]))
    d.notify.wait_for("READY=1")
    d.signal(signal.SIGUSR1)
    wait_until(
        lambda: "MainThread" in d.log_text() and "waz-scheduler" in d.log_text(),
        what="stack dump",
        timeout=20.0,
    )
