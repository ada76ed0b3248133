"""Every command group called through the Dispatcher, no sockets: a real store and fleet, on
SQLite and on PostgreSQL (the `core` fixture below)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.control.conftest import TestDaemon, make_config, running_core
from tests.control.dispatch_util import PHONE, Caller, Core
from tests.pg import store_url
from tests.waiting import wait_until
from waz_actors.control.auth import Auth
from waz_actors.control.dispatch import Dispatcher
from waz_actors.control.protocol import Later, Registry


@pytest.fixture(params=["sqlite", "postgres"])
def core(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Core]:
    with store_url(request.param) as url:
        yield from running_core(tmp_path, store={"url": url})


def test_ping_and_daemon_status(core: Core) -> None:
    pong = core.admin.ok("ping")
    assert pong["pong"] is True and pong["protocol"] == 1 and pong["uptime"] >= 0
    st = core.admin.ok("daemon.status")
    assert st["instances"] == 0 and "states" in st and "control" in st
    acme = core.tenant("acme")
    acme.ok("instance.create", driver="sim", instance_id="a1")
    core.admin.ok("instance.create", driver="sim", instance_id="other", tenant="globex")
    mine = acme.ok("daemon.status")
    assert mine["tenant"] == "acme" and mine["instances"] == 1 and "control" not in mine


def test_envelope_errors(core: Core) -> None:
    assert core.admin.error("no.such") == ("unknown_command", {"field": "cmd"})
    assert core.admin.error("ping", bogus=1) == ("bad_request", {"field": "bogus"})
    for token in (None, "waz_" + "x" * 43, "nope"):
        code, _ = Caller(core.dispatcher, token).error("ping")
        assert code == "unauthorized"
    acme = core.tenant("acme")
    for cmd in ("token.list", "sim.stats"):
        assert acme.error(cmd) == ("unauthorized", {"field": "token"})
    # raw frames: the same decoder the socket path uses
    bad = core.dispatcher(b"\xc1")
    assert bad["ok"] is False and bad["error"]["code"] == "bad_request"
    assert bad["id"] is None and bad["error"]["details"] == {"field": "frame"}
    frame = msgpack.packb({"v": 9, "id": "r1", "cmd": "ping", "token": core.admin_token})
    old = core.dispatcher(frame)
    assert old["id"] == "r1" and old["error"]["code"] == "unsupported_version"
    raw = core.dispatcher.handle(msgpack.packb({"v": 1, "id": 7, "cmd": "ping", "token": None}))
    assert raw is not None and msgpack.unpackb(raw)["error"]["code"] == "unauthorized"


def test_bad_arguments_name_the_field(core: Core) -> None:
    a = core.admin
    assert a.error("instance.create") == ("bad_request", {"field": "driver"})
    assert a.error("instance.create", driver="fax")[1] == {"field": "driver"}
    assert a.error("instance.create", driver="sim", instance_id=".x")[1] == {"field": "instance_id"}
    assert a.error("instance.list", state="asleep")[1] == {"field": "state"}
    a.ok("instance.create", driver="sim", instance_id="i1")
    assert a.error("message.send", instance_id="i1", to="not a phone", text="x")[1] == {
        "field": "to"
    }
    code, details = a.error("message.send", instance_id="i1", to=PHONE)
    assert code == "bad_request" and details == {"field": "text"}  # neither text nor media
    bad_ptt = {"url": "https://x.test/v.ogg", "ptt": "yes"}
    assert a.error("message.send", instance_id="i1", to=PHONE, media=bad_ptt)[1] == {
        "field": "media"
    }
    assert a.error("queue.list", instance_id="i1", limit=0)[1] == {"field": "limit"}
    assert a.error("instance.pair", instance_id="i1", phone="12ab")[1] == {"field": "phone"}
    assert a.error("token.create")[1] == {"field": "tenant"}


def test_instance_commands(core: Core) -> None:
    a = core.admin
    assert a.ok("instance.create", driver="sim", instance_id="shop", tenant="acme") == {
        "instance_id": "shop"
    }
    assert a.error("instance.create", driver="sim", instance_id="shop")[0] == "exists"
    generated = a.ok("instance.create", driver="sim")["instance_id"]
    listed = a.ok("instance.list")["instances"]
    assert [i["instance_id"] for i in listed] == sorted(["shop", generated])
    got = a.ok("instance.get", instance_id="shop")
    assert got["tenant"] == "acme" and got["state"] == "stopped"
    core.online(a, "shop")
    assert [i["instance_id"] for i in a.ok("instance.list", state="online")["instances"]] == [
        "shop"
    ]
    assert a.ok("instance.logout", instance_id="shop") == {"state": "logged_out"}
    assert a.ok("instance.pair", instance_id="shop")["qr"]
    assert a.ok("instance.stop", instance_id="shop") == {"state": "stopped"}
    assert a.ok("instance.delete", instance_id=generated) == {
        "instance_id": generated,
        "deleted": True,
        "cancelled": [],
    }
    assert a.error("instance.get", instance_id=generated) == (
        "not_found",
        {"field": "instance_id"},
    )


def test_message_and_queue_commands(core: Core) -> None:
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="q1")
    sent = a.ok("message.send", instance_id="q1", to=PHONE, text="one")
    assert sent["status"] == "queued" and sent["created"] is True
    mid = sent["message_id"]
    stored = core.daemon.store.get_message(mid)
    assert stored is not None and stored.text == "one"  # durable before the reply
    again = a.ok("message.send", instance_id="q1", to=PHONE, text="two", idempotency_key="k")
    same = a.ok("message.send", instance_id="q1", to=PHONE, text="two", idempotency_key="k")
    assert same["message_id"] == again["message_id"] and same["created"] is False
    got = a.ok("message.get", message_id=mid)
    assert got["text"] == "one" and got["status"] == "queued" and got["history"]

    st = a.ok("queue.status", instance_id="q1")
    assert st["depth"] == 2 and st["state"] == "stopped" and st["success_rate"] is None
    assert any("instance.start" in r for r in st["recommendations"])
    page = a.ok("queue.list", instance_id="q1", limit=1)
    assert [m["message_id"] for m in page["messages"]] == [mid] and page["next"] == mid
    rest = a.ok("queue.list", instance_id="q1", after=page["next"])
    assert [m["message_id"] for m in rest["messages"]] == [again["message_id"]]

    assert a.ok("message.cancel", message_id=mid) == {"message_id": mid, "status": "cancelled"}
    assert a.error("message.cancel", message_id=mid)[0] == "invalid_state"
    assert a.ok("queue.purge", instance_id="q1") == {"cancelled": 1}
    assert a.ok("queue.status", instance_id="q1")["depth"] == 0
    assert a.ok("queue.retry", instance_id="q1") == {"retried": []}  # nothing failed
    assert a.error("message.get", message_id="3EB0NOSUCH") == (
        "not_found",
        {"field": "message_id"},
    )


def test_queue_status_advice_comes_from_the_policy(core: Core) -> None:
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="q1")
    a.ok("instance.logout", instance_id="q1")
    st = a.ok("queue.status", instance_id="q1")
    assert st["state"] == "logged_out"
    assert any("pair again" in r for r in st["recommendations"])


def test_sent_messages_and_sim_faults(core: Core) -> None:
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="s1")
    core.online(a, "s1")
    ok = a.ok("message.send", instance_id="s1", to=PHONE, text="hi")["message_id"]
    wait_until(lambda: a.ok("message.get", message_id=ok)["status"] == "sent")
    assert a.ok("sim.stats")["totals"]["delivered"] >= 1
    fault = {"permanent": True}
    assert a.ok("sim.fault", instance_id="s1", kind="send_fail", params=fault) == {
        "injected": "send_fail"
    }
    bad = a.ok("message.send", instance_id="s1", to=PHONE, text="lost")["message_id"]
    wait_until(lambda: a.ok("message.get", message_id=bad)["status"] == "failed")
    st = a.ok("queue.status", instance_id="s1")
    assert st["sent"] == 1 and st["failed"] == 1 and st["success_rate"] == 0.5
    a.ok("sim.fault", instance_id="s1", kind="send_fail", params={"permanent": False})
    assert a.ok("queue.retry", instance_id="s1", message_ids=[bad]) == {"retried": [bad]}
    assert a.error("sim.fault", instance_id="nope", kind="crash")[0] == "not_found"


def test_tenants_see_only_their_own(core: Core) -> None:
    acme, globex = core.tenant("acme"), core.tenant("globex")
    acme.ok("instance.create", driver="sim", instance_id="a1")
    globex.ok("instance.create", driver="sim", instance_id="g1")
    assert acme.error("instance.create", driver="sim", tenant="globex") == (
        "bad_request",
        {"field": "tenant"},
    )
    mid = globex.ok("message.send", instance_id="g1", to=PHONE, text="secret")["message_id"]
    assert [i["instance_id"] for i in acme.ok("instance.list")["instances"]] == ["a1"]
    for cmd in ("instance.get", "instance.start", "instance.delete", "queue.status", "queue.list"):
        assert acme.error(cmd, instance_id="g1") == ("not_found", {"field": "instance_id"}), cmd
    assert acme.error("message.send", instance_id="g1", to=PHONE, text="x")[0] == "not_found"
    for cmd in ("message.get", "message.cancel"):
        assert acme.error(cmd, message_id=mid) == ("not_found", {"field": "message_id"}), cmd
    assert globex.ok("message.get", message_id=mid)["status"] == "queued"  # untouched


def test_token_commands(core: Core) -> None:
    a = core.admin
    made = a.ok("token.create", tenant="acme", label="ci")
    assert made["token"].startswith("waz_") and made["tenant"] == "acme"
    acme = Caller(core.dispatcher, made["token"])
    assert acme.ok("ping")["pong"] is True
    listed = {t["token_id"]: t for t in a.ok("token.list")["tokens"]}
    assert listed[made["token_id"]]["label"] == "ci" and "token" not in listed[made["token_id"]]
    assert a.ok("token.revoke", token_id=made["token_id"]) == {
        "token_id": made["token_id"],
        "revoked": True,
    }
    assert acme.error("ping")[0] == "unauthorized"
    assert a.error("token.revoke", token_id="ffffffffffff") == ("not_found", {"field": "token_id"})


class Held:
    """A registry with one command that answers later, when the test resolves its future."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.futures: list[Future[Any]] = []

        @self.registry.command("hold")
        def hold(ctx: Any) -> Later:
            fut: Future[Any] = Future()
            self.futures.append(fut)
            return Later(fut, lambda n: {"n": n})


def test_later_replies_busy_and_shutting_down(tmp_path: Path) -> None:
    cfg = make_config(tmp_path / "state", tmp_path / "run", control={"max_inflight": 1})
    held = Held()
    stats = {"errors": 0, "busy": 0}
    d = Dispatcher(cfg, None, None, _AdminOnly(), held.registry, stats=stats)  # type: ignore[arg-type]
    sent: list[tuple[object, list[bytes], bytes]] = []
    d.deliver = lambda peer, env, reply: sent.append((peer, env, reply))

    def frame(rid: int) -> bytes:
        return msgpack.packb({"v": 1, "id": rid, "cmd": "hold", "token": "t"})

    assert d.handle(frame(1), "peer", [b"route"]) is None  # answered later
    assert d.inflight == 1
    busy = msgpack.unpackb(d.handle(frame(2), "peer", [b"route"]))
    assert busy["error"]["code"] == "busy" and busy["error"]["details"]["max_inflight"] == 1
    assert stats == {"errors": 1, "busy": 1}
    held.futures[0].set_result(5)
    assert len(sent) == 1
    peer, env, reply = sent[0]
    assert peer == "peer" and env == [b"route"]
    assert msgpack.unpackb(reply) == {"v": 1, "id": 1, "ok": True, "result": {"n": 5}}
    d.end(1)  # the server does this once the reply is on the wire
    assert d.inflight == 0
    d.stop_accepting(0.0)
    down = msgpack.unpackb(d.handle(frame(3), "peer", [b"route"]))
    assert down["error"]["code"] == "shutting_down"
    d.close()


class _AdminOnly:
    """Auth stand-in: every token is the admin (the command above needs no store)."""

    def authenticate(self, token: str | None) -> Any:
        from waz_actors.control.auth import Identity

        return Identity(tenant=None, admin=True, token_hash="h")


def test_a_real_daemon_core_needs_no_sockets(tmp_path: Path) -> None:
    d = TestDaemon(make_config(tmp_path / "state", tmp_path / "run"), with_control=False)
    d.start()
    try:
        assert d.control is None
        auth = Auth(d.store, d.cfg.state_dir)
        from waz_actors.control.commands import REGISTRY

        disp = Dispatcher(d.cfg, d.fleet, d.store, auth, REGISTRY)
        reply = disp({"v": 1, "id": "x", "cmd": "ping", "token": auth.ensure_admin_token()})
        assert reply["ok"] is True and reply["result"]["pong"] is True
        disp.close()
    finally:
        d.stop(timeout=5)


def test_message_get_shows_receipts_and_the_duplicate_mark(core: Core) -> None:
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="r1")
    core.online(a, "r1")
    mid = a.ok("message.send", instance_id="r1", to=PHONE, text="hi")["message_id"]
    wait_until(lambda: a.ok("message.get", message_id=mid)["status"] == "sent")
    got = a.ok("message.get", message_id=mid)
    assert got["delivered_at"] is None and got["read_at"] is None
    assert got["possible_duplicate"] is False and got["wa_id"] == mid
    params = {"message_id": mid, "status": "read"}
    assert a.ok("sim.fault", instance_id="r1", kind="receipt", params=params) == {
        "injected": "receipt"
    }
    wait_until(lambda: a.ok("message.get", message_id=mid)["read_at"] is not None)
    got = a.ok("message.get", message_id=mid)
    assert got["delivered_at"] == got["read_at"] and got["status"] == "sent"
    listed = a.ok("queue.list", instance_id="r1")["messages"][0]
    assert listed["read_at"] == got["read_at"]
    bad = {"message_id": mid, "status": "played"}
    code, _details = a.error("sim.fault", instance_id="r1", kind="receipt", params=bad)
    assert code == "bad_request"


def _futures_in_cycles(run: Any) -> list[Future[Any]]:
    """The futures that `run()` left reachable only through reference cycles."""
    import gc

    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what a collection finds is kept in gc.garbage to look at
    try:
        run()
        gc.collect()
        return [o for o in gc.garbage if isinstance(o, Future)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_later_reply_leaves_no_reference_cycle(tmp_path: Path) -> None:
    # A callback holding its own future is a cycle per request (a resolved future keeps its
    # callbacks): the cyclic collector then ran full passes over thousands of in-flight
    # requests, more CPU than the sends themselves. Reference counting must free it all.
    cfg = make_config(tmp_path / "state", tmp_path / "run")
    held = Held()
    d = Dispatcher(cfg, None, None, _AdminOnly(), held.registry)  # type: ignore[arg-type]
    sent: list[bytes] = []
    d.deliver = lambda peer, env, reply: sent.append(reply)

    def run() -> None:
        frame = msgpack.packb({"v": 1, "id": 1, "cmd": "hold", "token": "t"})
        assert d.handle(frame, "peer", [b"route"]) is None
        held.futures.pop().set_result(5)
        assert len(sent) == 1

    assert _futures_in_cycles(run) == []
    d.close()


def test_message_send_leaves_no_reference_cycle(core: Core) -> None:
    # The whole durable path: dispatch, the store's group commit, the hand-over to the fleet.
    core.admin.ok("instance.create", driver="sim", instance_id="c1")  # stopped: stays queued
    sent: list[bytes] = []
    core.dispatcher.deliver = lambda peer, env, reply: sent.append(reply)
    args = {"instance_id": "c1", "to": PHONE, "text": "hi"}

    def run() -> None:
        for i in range(20):
            frame = msgpack.packb(
                {"v": 1, "id": i, "cmd": "message.send", "token": core.admin_token, "args": args}
            )
            assert core.dispatcher.handle(frame, "peer", [b"route"]) is None
        wait_until(lambda: len(sent) == 20)
        core.daemon.store.flush(5)

    assert _futures_in_cycles(run) == []
    assert all(msgpack.unpackb(r)["ok"] for r in sent)


def test_cluster_take_back_refuses_bad_calls_and_changes_nothing(core: Core) -> None:
    """The node-to-node command: admin only, validated, and outside a cluster invalid_state;
    the queued message it names stays queued through every refusal."""
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="t1")
    mid = a.ok("message.send", instance_id="t1", to=PHONE, text="stay")["message_id"]
    acme = core.tenant("acme")
    args = {"instance_id": "t1", "message_id": mid}
    assert acme.error("cluster.take_back", **args) == ("unauthorized", {"field": "token"})
    assert a.error("cluster.take_back", instance_id="t1")[0] == "bad_request"
    assert a.error("cluster.take_back", instance_id="t 1", message_id=mid)[0] == "bad_request"
    assert a.error("cluster.take_back", **args)[0] == "invalid_state"  # not in a cluster
    assert a.ok("message.get", message_id=mid)["status"] == "queued"
    assert a.ok("queue.status", instance_id="t1")["depth"] == 1
