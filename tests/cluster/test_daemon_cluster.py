"""Daemons with [cluster] enabled on the real local PostgreSQL: the supervisor runs only the
instances whose lease its node holds, a SIGTERM hands them over, a drain moves them; commands
cluster.status and cluster.drain through the Dispatcher and over the socket.

Both keep their store in the same PostgreSQL schema and are given the same instances in their
config (each seeds them; the second finds them there); the leases decide which one runs each.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.daemon_util import FAST, fast_config
from tests.waiting import wait_until
from waz_actors.app.runtime import Daemon
from waz_actors.clock import RealClock, Scheduler
from waz_actors.config import Config, parse
from waz_actors.control.auth import Auth, read_admin_token
from waz_actors.control.client import Client
from waz_actors.control.commands import REGISTRY
from waz_actors.control.dispatch import Dispatcher
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.errors import ConfigError

N = 8


@pytest.fixture
def shared_sim() -> Iterator[SimNetwork]:
    clock = RealClock(FAST)
    sched = Scheduler(clock)
    sched.start()
    yield SimNetwork(sched, clock, connect_latency=0.5, send_latency=0.2, rand=random.Random(5))
    sched.stop()


def cluster_config(tmp: Path, url: str, node: str) -> Config:
    # Daemon seconds at FAST (1 ms each): a 1.5 s lease renewed every 0.2 s.
    return fast_config(
        tmp / node,
        instances=N,
        store={"url": url},
        cluster={
            "enabled": True,
            "node_id": node,
            "lease_ttl": 1500.0,
            "renew_every": 200.0,
            "fence_margin": 500.0,
            "takeover_delay": 100.0,
            "acquire_rate": 100.0,
        },
    )


def running(d: Daemon) -> set[str]:
    return {i for i, ref in d.children.items() if ref.is_alive()}


def test_cluster_needs_a_postgresql_url() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.enabled: needs a PostgreSQL store\.url"):
        parse({"cluster": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"cluster\.lease_ttl"):
        parse(
            {
                "store": {"url": "postgresql://x/y"},
                "cluster": {"enabled": True, "lease_ttl": 10.0},
            }
        )


def test_two_daemons_split_the_instances_and_a_sigterm_hands_them_over(
    tmp_path: Path, pg_url: str, shared_sim: SimNetwork
) -> None:
    a = Daemon(cluster_config(tmp_path, pg_url, "a"), with_control=False, sim=shared_sim)
    b = Daemon(cluster_config(tmp_path, pg_url, "b"), with_control=False, sim=shared_sim)
    a.start()
    b.start()
    stopped_a = False
    try:

        def split() -> bool:
            ra, rb = running(a), running(b)
            assert not ra & rb, f"both run {ra & rb}"
            return len(ra) == len(rb) == N // 2

        wait_until(split, timeout=20, what=lambda: f"a {running(a)}, b {running(b)}")
        wait_until(
            lambda: all(a.board.get(i).state == "online" for i in running(a)),  # type: ignore[union-attr]
            timeout=20,
            what="a's instances online",
        )
        # Every owner write is fenced (state saves at least), and none was refused.
        fencing = a.store.fencing
        assert fencing is not None and fencing.checks > 0 and fencing.refusals == 0
        a.stop()  # SIGTERM: close every session, then release every lease
        stopped_a = True
        # The closed sessions' last writes were committed before the leases were released.
        assert fencing.refusals == 0
        wait_until(lambda: len(running(b)) == N, timeout=20, what="b runs all")
        wait_until(
            lambda: all(b.board.get(i).state == "online" for i in running(b)),  # type: ignore[union-attr]
            timeout=20,
            what="b's instances online",
        )
        assert shared_sim.stats()["totals"]["conflicts_caused_by_ours"] == 0
    finally:
        if not stopped_a:
            a.stop()
        b.stop()


def test_cluster_status_and_drain_through_the_dispatcher(
    tmp_path: Path, pg_url: str, shared_sim: SimNetwork
) -> None:
    a = Daemon(cluster_config(tmp_path, pg_url, "a"), with_control=False, sim=shared_sim)
    b = Daemon(cluster_config(tmp_path, pg_url, "b"), with_control=False, sim=shared_sim)
    a.start()
    b.start()
    try:
        assert a.fleet is not None
        auth = Auth(a.store, a.cfg.state_dir)
        dispatcher = Dispatcher(a.cfg, a.fleet, a.store, auth, REGISTRY)
        admin = auth.ensure_admin_token()
        tenant = auth.create("t1", "test", None)["token"]

        def ask(token: str, cmd: str, **args: object) -> dict[str, object]:
            req = {"v": 1, "id": 1, "cmd": cmd, "token": token}
            if args:
                req["args"] = args
            return dispatcher(req)  # type: ignore[no-any-return]

        wait_until(lambda: len(running(a)) + len(running(b)) == N, timeout=20, what="placed")
        st = ask(admin, "cluster.status")["result"]
        assert isinstance(st, dict)
        assert st["enabled"] is True and st["node_id"] == "a"
        assert {n["node_id"] for n in st["nodes"]} == {"a", "b"}
        assert len(st["leases"]) == N and st["draining"] == []
        # Admin only; bad input names the field and changes nothing.
        assert ask(tenant, "cluster.status")["error"]["code"] == "unauthorized"  # type: ignore[index]
        bad = ask(admin, "cluster.drain", node_id="")
        assert bad["error"]["code"] == "bad_request"  # type: ignore[index]
        assert bad["error"]["details"]["field"] == "node_id"  # type: ignore[index]
        missing = ask(admin, "cluster.drain", node_id="nobody")
        assert missing["error"]["code"] == "not_found"  # type: ignore[index]
        # Drain b from a's control plane: b hands everything over, gradually.
        assert ask(admin, "cluster.drain", node_id="b")["result"] == {
            "node_id": "b",
            "draining": True,
        }
        wait_until(lambda: len(running(a)) == N and not running(b), timeout=20, what="drained")
        st = ask(admin, "cluster.status")["result"]
        assert st["draining"] == ["b"]  # type: ignore[index]
        assert {x["owner"] for x in st["leases"]} == {"a"}  # type: ignore[index]
        assert shared_sim.stats()["totals"]["conflicts_caused_by_ours"] == 0
    finally:
        a.stop()
        b.stop()


def test_single_node_daemon_answers_cluster_status_disabled(tmp_path: Path) -> None:
    d = Daemon(fast_config(tmp_path), with_control=False)
    d.start()
    try:
        assert d.fleet is not None and d.cluster is None
        auth = Auth(d.store, d.cfg.state_dir)
        dispatcher = Dispatcher(d.cfg, d.fleet, d.store, auth, REGISTRY)
        admin = auth.ensure_admin_token()
        reply = dispatcher({"v": 1, "id": 1, "cmd": "cluster.status", "token": admin})
        assert reply["result"] == {"enabled": False}
        reply = dispatcher(
            {"v": 1, "id": 2, "cmd": "cluster.drain", "token": admin, "args": {"node_id": "x"}}
        )
        assert reply["error"]["code"] == "invalid_state"
    finally:
        d.stop()


def test_cluster_commands_over_the_socket(tmp_path: Path, pg_url: str) -> None:
    import shutil
    import tempfile

    run = Path(tempfile.mkdtemp(prefix="wz", dir="/tmp"))
    try:
        cfg = cluster_config(tmp_path, pg_url, "solo")
        cfg = cfg.with_overrides(runtime_dir=str(run))
        d = Daemon(cfg)
        d.start()
        try:
            with Client(cfg.control_endpoint, read_admin_token(cfg.state_dir), timeout=5) as c:
                wait_until(lambda: len(running(d)) == N, timeout=20, what="solo runs all")
                st = c.cluster_status()
                assert [n["node_id"] for n in st["nodes"]] == ["solo"]
                assert c.cluster_drain("solo") == {"node_id": "solo", "draining": True}
                wait_until(lambda: not running(d), timeout=20, what="solo drained")
                assert c.cluster_drain("solo", undo=True)["draining"] is False
                wait_until(lambda: len(running(d)) == N, timeout=20, what="solo back")
            # The CLI over the same socket.
            from click.testing import CliRunner

            from waz_actors.cli.main import cli

            env = {"WAZ_ENDPOINT": cfg.control_endpoint, "WAZ_STATE_DIR": str(cfg.state_dir)}
            out = CliRunner().invoke(cli, ["cluster", "status", "--leases"], env=env)
            assert out.exit_code == 0, out.output
            assert "solo *" in out.output and "i0" in out.output
            out = CliRunner().invoke(cli, ["cluster", "drain", "solo"], env=env)
            assert out.exit_code == 0 and "solo draining" in out.output
            out = CliRunner().invoke(cli, ["cluster", "drain", "ghost"], env=env)
            assert out.exit_code != 0 and "not_found" in out.output + str(out.stderr)
        finally:
            d.stop()
    finally:
        shutil.rmtree(run, ignore_errors=True)


def test_any_node_answers_for_every_instance_by_forwarding_to_its_owner(
    tmp_path: Path, pg_url: str, shared_sim: SimNetwork
) -> None:
    """One control plane: commands sent to a for instances b owns are answered by b (its live
    state, its session); a message sent through a is sent by b's session."""
    import shutil
    import tempfile

    run = Path(tempfile.mkdtemp(prefix="wz", dir="/tmp"))
    started: list[Daemon] = []
    try:
        cfgs = [
            cluster_config(tmp_path, pg_url, n).with_overrides(runtime_dir=str(run / n))
            for n in ("a", "b")
        ]
        a = Daemon(cfgs[0], sim=shared_sim)
        a.start()
        started.append(a)
        # One admin token for the cluster (the tokens table is shared, and each start revokes
        # every admin token but its own file's): b gets a's file.
        cfgs[1].state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(cfgs[0].state_dir / "admin.token", cfgs[1].state_dir / "admin.token")
        b = Daemon(cfgs[1], sim=shared_sim)
        b.start()
        started.append(b)
        wait_until(lambda: len(running(a)) == len(running(b)) == N // 2, timeout=20, what="split")
        theirs = sorted(running(b))[0]
        wait_until(lambda: b.board.get(theirs).state == "online", timeout=20, what="online")  # type: ignore[union-attr]
        with Client(cfgs[0].control_endpoint, read_admin_token(cfgs[0].state_dir)) as c:
            assert c.call("instance.get", {"instance_id": theirs})["state"] == "online"
            sent = c.call(
                "message.send", {"instance_id": theirs, "to": "6281234567890", "text": "hi"}
            )
            mid = sent["message_id"]
            wait_until(
                lambda: mid in shared_sim.delivered_ids(theirs), timeout=20, what="sent by b"
            )
            assert b.store.get_message(mid) is not None  # accepted by the owner's store
            c.call("instance.stop", {"instance_id": theirs})
            wait_until(lambda: b.board.get(theirs).state == "stopped", what="stopped on b")  # type: ignore[union-attr]
            assert theirs in running(b) and theirs not in running(a)
    finally:
        for d in started:
            d.stop()
        shutil.rmtree(run, ignore_errors=True)


def test_every_node_lists_and_reads_instances_it_does_not_run(
    tmp_path: Path, pg_url: str, shared_sim: SimNetwork
) -> None:
    """instance.list / instance.get answered by a node that does not run the instance (and did
    not see it at start): what its owner saved in the shared store."""
    a = Daemon(cluster_config(tmp_path, pg_url, "a"), with_control=False, sim=shared_sim)
    b = Daemon(cluster_config(tmp_path, pg_url, "b"), with_control=False, sim=shared_sim)
    a.start()
    b.start()
    try:
        assert a.fleet is not None and b.fleet is not None
        auth_a = Auth(a.store, a.cfg.state_dir)
        admin = auth_a.ensure_admin_token()
        # One admin token for the cluster: b reads the same file (docs/operations.md).
        auth_b = Auth(b.store, a.cfg.state_dir)
        on_a = Dispatcher(a.cfg, a.fleet, a.store, auth_a, REGISTRY)
        on_b = Dispatcher(b.cfg, b.fleet, b.store, auth_b, REGISTRY)

        def ask(d: Dispatcher, cmd: str, **args: object) -> dict[str, object]:
            return d({"v": 1, "id": 1, "cmd": cmd, "token": admin, "args": args})  # type: ignore[no-any-return]

        made = ask(on_a, "instance.create", instance_id="late", driver="sim")
        assert made["result"] == {"instance_id": "late"} or "result" in made, made
        wait_until(lambda: "late" in running(a) | running(b), timeout=20, what="late placed")
        elsewhere = "late" if "late" in running(a) else sorted(running(a))[0]
        listed = ask(on_b, "instance.list")["result"]
        assert {x["instance_id"] for x in listed["instances"]} >= {"late"}  # type: ignore[index]
        assert len(listed["instances"]) == N + 1  # type: ignore[index]
        got = ask(on_b, "instance.get", instance_id=elsewhere)
        assert got["result"]["instance_id"] == elsewhere, got  # type: ignore[index]
        saved = a.store.get_instance(elsewhere)
        assert saved is not None and got["result"]["state"] == saved.state  # type: ignore[index]
        missing = ask(on_b, "instance.get", instance_id="nobody")
        assert missing["error"]["code"] == "not_found"  # type: ignore[index]
    finally:
        a.stop()
        b.stop()
