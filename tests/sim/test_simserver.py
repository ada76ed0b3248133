"""The networked simulator: real ZeroMQ sockets on 127.0.0.1, several clients, dead owners."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest
import zmq
from click.testing import CliRunner
from click.testing import Result as CliResult

from tests.waiting import wait_until
from waz_actors.cli.main import cli
from waz_actors.cli.sim import SESSION_TTL
from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    DriverContext,
    LoggedOut,
    OutgoingMessage,
    PairCode,
    Paired,
    QrCode,
    SendResult,
)
from waz_actors.drivers.sim import server as sim_server
from waz_actors.drivers.sim.driver import SimDriver
from waz_actors.drivers.sim.model import jid_for
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.drivers.sim.remote import RemoteSimNetwork
from waz_actors.drivers.sim.server import DEFAULT_SESSION_TTL, SimServer, serve

from .conftest import Recorder, settle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(scheduler: Scheduler, clock: RealClock) -> Iterator[tuple[SimServer, SimNetwork]]:
    net = SimNetwork(scheduler, clock)
    server = SimServer("tcp://127.0.0.1:*", net, session_ttl=1.0)
    server.start()
    yield server, net
    server.stop()


@pytest.fixture
def client(
    served: tuple[SimServer, SimNetwork], clock: RealClock
) -> Iterator[Callable[[], RemoteSimNetwork]]:
    made: list[RemoteSimNetwork] = []

    def make() -> RemoteSimNetwork:
        remote = RemoteSimNetwork(served[0].endpoint, clock=clock, heartbeat=0.05)
        made.append(remote)
        return remote

    yield make
    for remote in made:
        remote.close()


def msg(mid: str) -> OutgoingMessage:
    return OutgoingMessage(message_id=mid, to="5511999990000@s.whatsapp.net", text="hi")


def test_conflict_across_two_processes_is_ours(client: Callable[[], RemoteSimNetwork]) -> None:
    a, b = client(), client()
    rec_a, rec_b = Recorder(), Recorder()
    a.open_session("A", rec_a)
    rec_a.wait_count(Connected)
    b.open_session("A", rec_b)
    assert rec_b.wait_count(Connected)[0] == Connected(jid_for("A"))
    rec_a.wait_count(Conflict)
    stats = b.stats()
    assert stats["instances"]["A"]["conflicts_caused_by_ours"] == 1
    assert stats["instances"]["A"]["stale_replaced"] == 0
    assert stats["server"]["live_owners"] == 2


def test_sends_duplicates_and_stats_over_the_wire(client: Callable[[], RemoteSimNetwork]) -> None:
    a = client()
    rec = Recorder()
    s = a.open_session("A", rec)
    rec.wait_count(Connected)
    media = {"url": "http://127.0.0.1/x.png", "caption": "c"}
    s.send(OutgoingMessage("M1", "x@s.whatsapp.net", None, media))
    s.send(msg("M1"))
    results = rec.wait_count(SendResult, 2)
    assert all(r == SendResult("M1", ok=True, wa_id="M1") for r in results)
    assert a.delivered_ids("A") == ["M1"]
    assert [e["to"] for e in a.delivered_log()] == ["x@s.whatsapp.net"]
    st = a.stats()
    assert (st["totals"]["delivered"], st["totals"]["duplicates"]) == (1, 1)
    assert a.ping()


def test_inject_over_the_wire_and_bad_faults(
    client: Callable[[], RemoteSimNetwork], served: tuple[SimServer, SimNetwork]
) -> None:
    a = client()
    rec = Recorder()
    a.open_session("A", rec)
    rec.wait_count(Connected)
    before = a.stats()
    with pytest.raises(ValueError, match="unknown fault kind 'x'; kinds: conflict, disconnect"):
        a.inject("A", "x")
    with pytest.raises(ValueError, match="count must be"):
        a.inject("A", "send_fail", count=-1)
    with pytest.raises(ValueError, match="no live session"):
        a.inject("B", "conflict")  # refused by the server itself
    with pytest.raises(ValueError, match="no session waiting for pairing"):
        a.complete_pairing("A")
    assert a.stats()["instances"] == before["instances"]
    a.inject("A", "conflict")
    rec.wait_count(Conflict)
    st = a.stats()["instances"]["A"]
    assert (st["conflicts_injected"], st["conflicts_caused_by_ours"]) == (1, 0)


def test_ban_time_is_translated_to_the_client_clock(
    client: Callable[[], RemoteSimNetwork], clock: RealClock
) -> None:
    a = client()
    rec = Recorder()
    a.open_session("A", rec)
    rec.wait_count(Connected)
    t0 = clock.now()
    a.inject("A", "ban", duration=5000)
    until = rec.wait_count(Banned)[0].until
    assert t0 + 5000 - 50 <= until <= clock.now() + 5000


def test_close_means_silence_over_the_wire(
    client: Callable[[], RemoteSimNetwork], served: tuple[SimServer, SimNetwork]
) -> None:
    _, net = served
    net.send_latency = 200
    a = client()
    rec = Recorder()
    s = a.open_session("A", rec)
    rec.wait_count(Connected)
    s.send(msg("M1"))
    s.close()
    s.close()
    settle(net.scheduler, 300)
    assert a.ping()  # any frame the server sent before this reply has been handled
    assert rec.snapshot() == [Connected(jid_for("A"))]
    assert a.stats()["instances"]["A"]["lost_acks"] == 1


def test_owner_silent_past_ttl_is_dead_replacing_it_is_no_conflict(
    client: Callable[[], RemoteSimNetwork], served: tuple[SimServer, SimNetwork]
) -> None:
    server, _ = served
    a, b = client(), client()
    rec_a, rec_b = Recorder(), Recorder()
    a.open_session("A", rec_a)
    rec_a.wait_count(Connected)
    assert b.ping()
    a.close(bye=False)  # stops heartbeats without a goodbye, like a frozen process
    wait_until(lambda: server.live_owners() == 1, timeout=5.0, what="one live owner")
    b.open_session("A", rec_b)
    rec_b.wait_count(Connected)
    st = b.stats()["instances"]["A"]
    assert (st["stale_replaced"], st["conflicts_caused_by_ours"]) == (1, 0)


def test_kill_9_is_seen_at_once_through_the_pid(
    client: Callable[[], RemoteSimNetwork], served: tuple[SimServer, SimNetwork]
) -> None:
    server, _ = served
    server.session_ttl = 60.0  # so only the pid check can tell the owner is gone
    script = (
        "import sys, threading\n"
        "from waz_actors.clock import RealClock\n"
        "from waz_actors.drivers.base import Connected\n"
        "from waz_actors.drivers.sim.remote import RemoteSimNetwork\n"
        "net = RemoteSimNetwork(sys.argv[1], clock=RealClock(0.001))\n"
        "up = threading.Event()\n"
        "net.open_session('A', lambda e: isinstance(e, Connected) and up.set())\n"
        "print('ready' if up.wait(5) else 'timeout', flush=True)\n"
        "threading.Event().wait()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, server.endpoint],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    b = client()
    rec = Recorder()
    b.open_session("A", rec)
    rec.wait_count(Connected)
    st = b.stats()["instances"]["A"]
    assert (st["stale_replaced"], st["conflicts_caused_by_ours"]) == (1, 0)


def test_sim_driver_over_a_remote_network(
    client: Callable[[], RemoteSimNetwork], served: tuple[SimServer, SimNetwork]
) -> None:
    remote = client()
    rec = Recorder()
    drv = SimDriver(DriverContext("A", {}, "/nonexistent", rec), remote)
    drv.connect()
    rec.wait_count(Connected)
    drv.send(msg("M1"))
    rec.wait_count(SendResult)
    drv.disconnect()
    drv.send(msg("M2"))  # no session: answered locally through post()
    assert rec.wait_count(SendResult, 2)[1].error == "not connected"
    drv.logout()  # offline logout goes through the server
    assert rec.wait_count(LoggedOut)[0] == LoggedOut("logged out")
    drv.request_pair_code("5511999990000")
    rec.wait_count(QrCode)
    rec.wait_count(PairCode)
    remote.complete_pairing("A")
    rec.wait_count(Paired)
    rec.wait_count(Connected, 2)
    assert remote.delivered_ids("A") == ["M1"]


def test_garbage_never_stops_the_server(
    served: tuple[SimServer, SimNetwork], client: Callable[[], RemoteSimNetwork]
) -> None:
    server, _ = served
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(server.endpoint)
    try:
        raw.send(b"\xc1 not msgpack")
        raw.send(msgpack.packb([1, 2, 3]))
        raw.send(msgpack.packb({"op": "warp"}))
        raw.send(msgpack.packb({"op": "open", "sid": 5, "instance_id": "A"}))
        raw.send(msgpack.packb({"op": "send", "sid": "nope", "message": {"message_id": "M9"}}))
        raw.send(msgpack.packb({"op": "inject", "rid": 1, "kind": "conflict"}))
        assert raw.poll(5000)
        reply = msgpack.unpackb(raw.recv())
        assert reply == {
            "op": "reply",
            "rid": 1,
            "ok": False,
            "error": "missing field 'instance_id'",
        }
        unknown = {"message_id": "M8", "to": "x@s.whatsapp.net"}
        raw.send(msgpack.packb({"op": "send", "sid": "gone", "message": unknown}))
        frames = []
        for _ in range(2):
            assert raw.poll(5000)
            frames.append(msgpack.unpackb(raw.recv()))
        assert [f["event"]["type"] for f in frames] == ["SendResult", "Disconnected"]
        assert frames[0]["event"]["ok"] is False and frames[1]["sid"] == "gone"
        raw.send(msgpack.packb({"op": "stats", "rid": 2}))
        assert raw.poll(5000)
        stats = msgpack.unpackb(raw.recv())["result"]
    finally:
        raw.close()
    assert stats["server"]["bad_requests"] == 5
    assert stats["instances"] == {}
    assert client().ping()


def test_remote_input_checks(client: Callable[[], RemoteSimNetwork]) -> None:
    a = client()
    with pytest.raises(ValueError, match="instance_id"):
        a.open_session("", Recorder())
    s = a.open_session("A", Recorder())
    with pytest.raises(TypeError):
        s.send("M1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="phone"):
        s.request_pair_code("x")
    with pytest.raises(ValueError, match="heartbeat"):
        RemoteSimNetwork("tcp://127.0.0.1:1", heartbeat=0)
    with pytest.raises(ValueError, match="bad sim server endpoint"):
        RemoteSimNetwork("nonsense://")
    a.close()
    with pytest.raises(RuntimeError, match="closed"):
        a.open_session("B", Recorder())


def test_request_timeout_when_no_server() -> None:
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as probe:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
        probe.close(linger=0)  # nobody listens there any more
        remote = RemoteSimNetwork(f"tcp://127.0.0.1:{port}", request_timeout=0.2)
        try:
            with pytest.raises(TimeoutError, match="did not answer stats"):
                remote.stats()
        finally:
            remote.close()


def test_serve_in_a_thread_with_faults() -> None:
    ready: list[str] = []
    up, stop = threading.Event(), threading.Event()

    def on_ready(endpoint: str) -> None:
        ready.append(endpoint)
        up.set()

    thread = threading.Thread(
        target=serve,
        args=("tcp://127.0.0.1:*", 0.001, "send_fail=3600"),
        kwargs={"ready": on_ready, "stop": stop, "seed": 1},
    )
    thread.start()
    try:
        assert up.wait(5)
        remote = RemoteSimNetwork(ready[0])
        try:
            rec = Recorder()
            remote.open_session("A", rec)
            rec.wait_count(Connected)
            wait_until(
                lambda: remote.stats()["faults"].get("send_fail", 0) >= 1,
                timeout=5.0,
                what="a send_fail fault counted",
            )
        finally:
            remote.close()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def sim_serve(*args: str) -> CliResult:
    return CliRunner().invoke(cli, ["sim", "serve", *args])


def test_bad_arguments_exit_2() -> None:
    r = sim_serve("--endpoint", "tcp://127.0.0.1:*", "--faults", "boom=1")
    assert r.exit_code == 2
    assert "bad fault rate 'boom=1'" in r.stderr
    r = sim_serve("--endpoint", "tcp://127.0.0.1:*", "--time-scale", "0")
    assert r.exit_code == 2
    assert "--time-scale" in r.stderr
    r = sim_serve("--endpoint", "tcp://127.0.0.1:*", "--session-ttl", "0")
    assert r.exit_code == 2
    assert "--session-ttl" in r.stderr
    r = sim_serve("--endpoint", "bogus://x")
    assert r.exit_code == 2
    assert "cannot bind" in r.stderr
    # The function behind the command checks what the command's option types check.
    with pytest.raises(ValueError, match="time_scale"):
        serve("tcp://127.0.0.1:*", 0)
    with pytest.raises(ValueError, match="session_ttl"):
        serve("tcp://127.0.0.1:*", 1.0, session_ttl=0)


def test_serve_command_passes_every_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every option of the one entry point reaches `serve` (the old second entry point had
    --session-ttl; the command must keep it)."""
    got: list[tuple[tuple[object, ...], dict[str, object]]] = []
    monkeypatch.setattr(sim_server, "serve", lambda *a, **kw: got.append((a, kw)))
    r = sim_serve(
        "--endpoint", "tcp://127.0.0.1:*", "--time-scale", "0.5", "--faults", "conflict=2",
        "--session-ttl", "7.5", "--seed", "3", "--connect-latency", "1.5", "--send-latency", "0.7",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    ((args, kwargs),) = got
    assert args == ("tcp://127.0.0.1:*", 0.5, "conflict=2")
    assert {k: v for k, v in kwargs.items() if k != "ready"} == {
        "session_ttl": 7.5,
        "seed": 3,
        "connect_latency": 1.5,
        "send_latency": 0.7,
    }
    got.clear()
    assert sim_serve("--endpoint", "tcp://127.0.0.1:*").exit_code == 0
    assert got[0][1]["session_ttl"] == DEFAULT_SESSION_TTL == SESSION_TTL


def test_standalone_process(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/sim.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waz_actors",
            "sim",
            "serve",
            "--endpoint",
            endpoint,
            "--time-scale",
            "0.001",
            "--faults",
            "conflict=1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"sim server listening on {endpoint}"
        remote = RemoteSimNetwork(endpoint, clock=RealClock(0.001))
        try:
            rec = Recorder()
            remote.open_session("A", rec)
            rec.wait_count(Connected)
            assert remote.stats()["instances"]["A"]["connects"] == 1
        finally:
            remote.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0


def test_a_burst_loses_no_answer(client: Callable[[], RemoteSimNetwork]) -> None:
    """Every send of a burst larger than ZeroMQ's default high-water mark (1000) is answered."""
    a = client()
    rec = Recorder()
    s = a.open_session("A", rec)
    rec.wait_count(Connected)
    for i in range(3000):
        s.send(msg(f"M{i}"))
    results = rec.wait_count(SendResult, 3000, timeout=8)
    assert len({r.message_id for r in results}) == 3000 and all(r.ok for r in results)
    assert a.stats()["totals"]["delivered"] == 3000
