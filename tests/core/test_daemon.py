"""Supervision, shutdown and restart with real pykka actors and a real SQLite file."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg
from tests.core.daemon_util import FAST, fast_config, send, state_of, statuses
from tests.waiting import wait_until
from waz_actors.app.runtime import Daemon
from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.errors import StateDirLocked


@pytest.fixture
def shared_sim():
    """A fake network that outlives daemons, so a restart is judged by the same WhatsApp."""
    clock = RealClock(FAST)
    sched = Scheduler(clock)
    sched.start()
    net = SimNetwork(sched, clock, connect_latency=0.5, send_latency=0.2, rand=random.Random(3))
    yield net
    sched.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request):
    """store.url: empty for the SQLite file in the state directory, or a PostgreSQL schema."""
    with pg.store_url(request.param) as url:
        yield url


def start(cfg, sim=None) -> Daemon:
    d = Daemon(cfg, with_control=False, sim=sim)
    d.start()
    return d


def test_crashed_child_is_replaced_and_its_queue_drains(tmp_path: Path) -> None:
    d = start(fast_config(tmp_path, instances=1))
    try:
        wait_until(lambda: state_of(d, "i0") == "online", what="online", timeout=10.0)
        assert d.fleet.stop("i0") == "stopped"
        msgs = [send(d, "i0", f"m{i}").message_id for i in range(5)]
        old = d.children.get("i0").actor_urn
        d.fleet.crash("i0")
        wait_until(
            lambda: d.children.get("i0").actor_urn != old, what="a fresh actor", timeout=10.0
        )
        wait_until(lambda: d.board.get("i0").queue_depth == 5, what="queue reloaded", timeout=10.0)
        d.fleet.start("i0")
        wait_until(lambda: statuses(d, msgs) == ["sent"] * 5, what="all sent", timeout=10.0)
        assert sorted(d.sim.delivered_ids("i0")) == sorted(msgs)
        assert d.sweep.restarts == 1
    finally:
        d.stop()


def test_restart_intensity_trips_the_instance(tmp_path: Path) -> None:
    cfg = fast_config(
        tmp_path, instances=1, daemon={"restart_intensity": 2, "restart_window": 60_000.0}
    )
    d = start(cfg)
    try:
        wait_until(lambda: state_of(d, "i0") == "online", what="online", timeout=10.0)
        for n in range(3):
            urn = d.children.get("i0").actor_urn
            d.fleet.crash("i0")
            wait_until(
                lambda urn=urn: d.children.get("i0").actor_urn != urn,
                what=f"restart {n}",
                timeout=10.0,
            )
        wait_until(lambda: state_of(d, "i0") == "tripped", what="tripped", timeout=10.0)
        assert any(a["kind"] == "restart_intensity" for a in d.sweep.alarms)
        # An operator reset brings it back.
        d.fleet.reset("i0")
        wait_until(lambda: state_of(d, "i0") == "online", what="online after reset", timeout=10.0)
    finally:
        d.stop()


def test_conflict_storm_trips_one_while_others_send(tmp_path: Path) -> None:
    cfg = fast_config(tmp_path, instances=3, queue={"pacing_interval": 0.0})
    d = start(cfg)
    try:
        wait_until(
            lambda: all(state_of(d, f"i{n}") == "online" for n in range(3)),
            what="online",
            timeout=10.0,
        )
        for _ in range(cfg.conflict.trip_threshold):
            wait_until(lambda: state_of(d, "i0") == "online", what="i0 back online", timeout=10.0)
            d.fleet.sim_fault("i0", "conflict", {})
            wait_until(
                lambda: state_of(d, "i0") in ("cooldown", "tripped"),
                what="i0 conflict",
                timeout=10.0,
            )
        wait_until(lambda: state_of(d, "i0") == "tripped", what="i0 tripped", timeout=10.0)
        others = [send(d, f"i{1 + n % 2}", f"m{n}").message_id for n in range(20)]
        wait_until(lambda: statuses(d, others) == ["sent"] * 20, what="others sent", timeout=10.0)
        assert state_of(d, "i0") == "tripped"
        assert d.sim.stats()["totals"]["conflicts_caused_by_ours"] == 0
    finally:
        d.stop()


def test_stop_and_restart_delivers_everything_exactly_once(
    tmp_path: Path, shared_sim, store_url: str
) -> None:
    cfg = fast_config(
        tmp_path, instances=4, queue={"pacing_interval": 50.0}, store={"url": store_url}
    )
    shared_sim.send_latency = 3.0  # sends are in flight when the stop comes
    d = start(cfg, shared_sim)
    ids: list[str] = []
    try:
        wait_until(
            lambda: all(state_of(d, f"i{n}") == "online" for n in range(4)),
            what="online",
            timeout=10.0,
        )
        ids = [send(d, f"i{n % 4}", f"m{n}").message_id for n in range(200)]
        wait_until(
            lambda: sum(s.in_flight for s in d.board.all()) > 0, what="in flight", timeout=10.0
        )
    finally:
        d.stop()
    left = [s for s in statuses_after(cfg, ids) if s != "sent"]
    assert left, "the stop came too late to test anything"
    d2 = start(cfg, shared_sim)
    try:
        wait_until(lambda: statuses(d2, ids) == ["sent"] * len(ids), timeout=30, what="all sent")
    finally:
        d2.stop()
    stats = shared_sim.stats()["totals"]
    assert stats["duplicates"] == 0
    assert stats["conflicts_caused_by_ours"] == 0
    delivered = [e["message_id"] for e in shared_sim.delivered_log()]
    assert sorted(delivered) == sorted(ids)


def statuses_after(cfg, ids: list[str]) -> list[str]:
    from waz_actors.store import Store

    s = Store(cfg.store_target)
    s.open()
    try:
        return [s.get_message(i).status for i in ids]
    finally:
        s.close()


def test_nothing_is_respawned_once_the_daemon_stops(tmp_path: Path, shared_sim) -> None:
    """Regression: a sweep queued behind the stop found the stopped children dead and replaced
    them; the replacements booted, connected and sent after the daemon had stopped (and a
    restarted daemon then resent the same messages: duplicates)."""
    import pykka

    from waz_actors.actors.instance_actor import InstanceActor

    cfg = fast_config(tmp_path, instances=6, daemon={"health_sweep": 0.5})  # ~1 ms real
    d = start(cfg, shared_sim)
    try:
        wait_until(
            lambda: all(state_of(d, f"i{n}") == "online" for n in range(6)),
            what="online",
            timeout=10.0,
        )
        wait_until(lambda: d.sweep.sweeps >= 3, what="sweeps running", timeout=10.0)
    finally:
        d.stop()
    assert d.sweep.restarts == 0  # nothing was found "dead" and replaced
    assert pykka.ActorRegistry.get_by_class(InstanceActor) == []
    assert shared_sim.instance_ids(live_only=True) == []


def test_an_instance_whose_driver_is_missing_is_shown_with_the_reason(tmp_path: Path) -> None:
    """A stored instance whose driver this daemon lacks (neonize not installed, say) is not
    started, but it is listed with the reason, and messages for it are kept, not refused."""
    import time

    from waz_actors.store import InstanceRecord, Store

    cfg = fast_config(tmp_path)
    Path(cfg.state_dir).mkdir(parents=True)
    s = Store(cfg.db_path)
    s.open()
    now = time.time()
    s.create_instance(
        InstanceRecord("ghost", "t1", "ghostdriver", {}, "running", "online", now, None, None,
                       None, now)
    )  # fmt: skip
    s.close()
    d = start(cfg)
    try:
        snap = wait_until(
            lambda: (s := d.board.get("ghost")) is not None and s.last_reason and s,
            what="on the board with a reason",
            timeout=10.0,
        )
        assert snap.state == "stopped" and "'ghostdriver' is not available" in snap.last_reason
        rec = send(d, "ghost", "kept for later")
        assert d.store.get_message(rec.message_id).status == "queued"
    finally:
        d.stop()


def test_health_sweeps_never_connect(tmp_path: Path) -> None:
    cfg = fast_config(tmp_path, daemon={"health_sweep": 5.0})
    d = start(cfg)
    try:
        d.fleet.create("quiet", "sim", "t1", {})
        wait_until(lambda: d.sweep.sweeps >= 10, what="ten sweeps", timeout=10.0)
        for _ in range(50):
            d.fleet.snapshots()
            d.fleet.status()
        assert d.sim.stats()["instances"].get("quiet", {}).get("connects", 0) == 0
        assert state_of(d, "quiet") == "stopped"
        assert d.sweep.unresponsive == ()
    finally:
        d.stop()


def test_second_daemon_on_same_state_dir_refuses(tmp_path: Path) -> None:
    cfg = fast_config(tmp_path)
    d = start(cfg)
    try:
        with pytest.raises(StateDirLocked, match="in use by another"):
            start(cfg)
    finally:
        d.stop()


def test_staggered_start_limits_connection_rate(tmp_path: Path) -> None:
    cfg = fast_config(tmp_path, instances=40, daemon={"connect_rate": 2.0})  # 2 per daemon s
    d = start(cfg)
    try:
        wait_until(
            lambda: all(state_of(d, f"i{n}") == "online" for n in range(40)),
            what="online",
            timeout=10.0,
        )
        # 40 attempts at 2 per second need ~20 daemon seconds: they were spread out.
        assert d.clock.now() >= 19.0
    finally:
        d.stop()


@pytest.mark.parametrize(
    ("body", "expect"),
    [
        (
            "[daemon]\ntime_scal = 1\n",
            "daemon.time_scal: unknown setting (did you mean 'time_scale'?)",
        ),
        ("[queue]\nmax_size = 'ten'\n", "queue.max_size: expected an integer"),
        ("[connection]\nthrottle = -5\n", "connection.throttle: must be greater than 0"),
        ("[[instances]]\nid = 'a'\ndriver = 'simm'\n", "instances[0].driver: unknown driver"),
        ("[daemon\n", "not valid TOML"),
    ],
)
def test_bad_config_one_line_and_exit_2(tmp_path: Path, body: str, expect: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(body)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "waz_actors",
            "run",
            "--config",
            str(f),
            "--state-dir",
            str(tmp_path / "s"),
            "--runtime-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert not (tmp_path / "s").exists()  # nothing was touched


def test_receipts_after_a_restart_reach_the_message(tmp_path: Path, shared_sim) -> None:
    """The daemon that sent a message is gone; the phone's receipts, which name only
    WhatsApp's id, still land on our message (the wa_id is stored with it)."""
    cfg = fast_config(tmp_path, instances=1)
    d = start(cfg, shared_sim)
    try:
        wait_until(lambda: state_of(d, "i0") == "online", what="online", timeout=10.0)
        mid = send(d, "i0", "hello").message_id
        wait_until(lambda: statuses(d, [mid]) == ["sent"], what="sent", timeout=10.0)
        assert d.store.get_message(mid).wa_id == mid
    finally:
        d.stop()
    d2 = start(cfg, shared_sim)
    events: list[dict] = []
    d2.bus.subscribe("message.i0.status", lambda t, b: events.append(dict(b)))
    try:
        wait_until(lambda: state_of(d2, "i0") == "online", what="online again", timeout=10.0)
        shared_sim.inject("i0", "receipt", message_id=mid, status="delivered")
        wait_until(
            lambda: d2.store.flush(5) or d2.store.get_message(mid).delivered_at is not None,
            what="delivered_at",
            timeout=10.0,
        )
        shared_sim.inject("i0", "receipt", message_id=mid, status="read")
        wait_until(
            lambda: d2.store.flush(5) or d2.store.get_message(mid).read_at is not None,
            what="read_at",
            timeout=10.0,
        )
        rec = d2.store.get_message(mid)
        assert rec.status == "sent" and rec.delivered_at <= rec.read_at
        wait_until(lambda: len(events) >= 2, what="status events", timeout=10.0)
        assert [e["status"] for e in events] == ["delivered", "read"]
        assert events[1]["read_at"] == rec.read_at
    finally:
        d2.stop()


@pytest.mark.parametrize("policy", ["always", "never"])
def test_sim_configured_without_dedup_marks_or_withholds_the_resend(
    tmp_path: Path, policy: str
) -> None:
    """`[sim] dedup_resends = false` through the config: a send that reached the phone but
    whose answer never came times out; `always` resends it marked, `never` ends it unknown."""
    cfg = fast_config(
        tmp_path,
        instances=1,
        sim={"dedup_resends": False},
        queue={"resend_unknown": policy, "processing_timeout": 300.0},
    )
    d = start(cfg)
    try:
        wait_until(lambda: state_of(d, "i0") == "online", what="online", timeout=10.0)
        assert d.sim is not None
        d.sim.inject("i0", "blackhole", deliver=True)
        mid = send(d, "i0", "maybe twice").message_id
        final = "sent" if policy == "always" else "unknown"
        wait_until(lambda: statuses(d, [mid]) == [final], what=final, timeout=20.0)
        rec = d.store.get_message(mid)
        delivered = [e["message_id"] for e in d.sim.delivered_log()]
        if policy == "always":
            assert rec.possible_duplicate is True and delivered == [mid, mid]
        else:
            assert rec.possible_duplicate is False and delivered == [mid]
    finally:
        d.stop()
