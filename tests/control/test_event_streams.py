"""Event streams on the control socket (events.subscribe), tenant-scoped, and pairing codes kept
off the shared PUB socket (issue 11 items 5 and 6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack

from tests.control.conftest import TestDaemon, online
from tests.control.dispatch_util import Core
from tests.waiting import wait_until
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client, EventStream

TO = "6281234567890"


# -- over the socket ------------------------------------------------------------------------


def test_pairing_codes_never_go_out_on_pub(start_daemon: Callable[..., TestDaemon]) -> None:
    d = start_daemon(sim={"qr_interval": 20.0}, connection={"pairing_timeout": 100_000.0})
    admin = Client(d.cfg.control_endpoint, read_admin_token(d.cfg.state_dir), timeout=5)
    token = admin.token_create("acme", "t")["token"]
    owner = Client(d.cfg.control_endpoint, token, timeout=5)
    admin.instance_create("sim", "qr1", tenant="acme")
    online(admin, "qr1")
    admin.instance_logout("qr1")
    pub: list[tuple[str, dict[str, Any]]] = []
    with (
        EventStream(d.cfg.events_endpoint, [""]) as everything,
        owner.subscribe(["instance.qr1."]) as mine,
        owner.subscribe(["instance.qr1."]) as bystander,  # same tenant, did not ask to pair
        admin.subscribe([""]) as watching_admin,
    ):
        first = owner.instance_pair("qr1", subscription_id=mine.id)
        assert first["qr"]
        codes = {first["qr"]}
        seen: list[tuple[str, dict[str, Any]]] = []

        def rotated() -> bool:
            for stream, into in ((mine, seen), (bystander, seen), (watching_admin, seen)):
                ev = stream.recv(0.01)
                if ev is not None:
                    into.append((stream.id, ev))  # type: ignore[arg-type]
            ev = everything.recv(0.01)
            if ev is not None:
                pub.append(ev)
            mine_codes = [
                b["qr"]
                for sid, (t, b) in seen
                if sid == mine.id and t.endswith(".qr") and "qr" in b
            ]
            codes.update(mine_codes)
            on_pub = [t for t, _ in pub if t == "instance.qr1.qr"]
            return len(codes) >= 3 and len(on_pub) >= 2

        wait_until(rotated, timeout=20, what="the QR code rotated")
    # The pairing client got the rotating codes on its stream; nobody else ever saw one (state
    # events carry a numeric "code": the disconnect code, not a pairing code).
    leaked = [(sid, ev) for sid, ev in seen if sid != mine.id] + [("pub", ev) for ev in pub]
    for _, (topic, body) in leaked:
        if topic.endswith(".qr"):
            assert "qr" not in body and "code" not in body, (topic, body)
        text = msgpack.packb(body, default=str)
        assert not any(c.encode() in text for c in codes), (topic, body)
    qr_events = [b for t, b in pub if t == "instance.qr1.qr"]
    assert all(b["kind"] == "qr" and b["expires_at"] > 0 for b in qr_events)
    admin.close()
    owner.close()


def test_two_tenants_each_follow_their_own(
    daemon: TestDaemon, admin: Client, tenant_client: Callable[[str], Client]
) -> None:
    a, b = tenant_client("ta"), tenant_client("tb")
    admin.instance_create("sim", "ia", tenant="ta")
    admin.instance_create("sim", "ib", tenant="tb")
    got: dict[str, list[tuple[str, dict[str, Any]]]] = {"a": [], "b": [], "admin": []}
    with a.subscribe() as sa, b.subscribe() as sb, admin.subscribe(["instance."]) as sadm:
        online(admin, "ia")
        online(admin, "ib")

        def drained() -> bool:
            for name, s in (("a", sa), ("b", sb), ("admin", sadm)):
                while (ev := s.recv(0.01)) is not None:
                    got[name].append(ev)
            ids = {n: {body.get("instance_id") for _, body in evs} for n, evs in got.items()}
            return {"ia", "ib"} <= ids["admin"] and "ia" in ids["a"] and "ib" in ids["b"]

        wait_until(drained, what="each stream saw its instances")
    assert {body["instance_id"] for _, body in got["a"]} == {"ia"}
    assert {body["instance_id"] for _, body in got["b"]} == {"ib"}
    assert all(t.startswith("instance.") for t, _ in got["admin"])
    # a tenant may not name another tenant's subscription
    with a.subscribe() as other:
        e = _error(lambda: b.call("events.renew", {"subscription_id": other.id}))
        assert e == "not_found"


def _error(fn: Callable[[], Any]) -> str:
    from waz_actors.control.client import ClientError

    try:
        fn()
    except ClientError as e:
        return e.code
    raise AssertionError("no error")


def test_clients_that_never_subscribe_see_no_events(daemon: TestDaemon, admin: Client) -> None:
    admin.instance_create("sim", "quiet")
    with admin.subscribe() as s:  # someone else subscribes on their own connection
        online(admin, "quiet")
        wait_until(lambda: s.recv(0.05) is not None)
    assert admin.instance_get("quiet")["state"] == "online"  # plain replies only on this one


# -- through the Dispatcher ------------------------------------------------------------------


class Collected:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def __call__(self, peer: object, envelope: list[bytes], frame: bytes) -> None:
        self.frames.append(msgpack.unpackb(frame, raw=False))

    def of(self, sid: str) -> list[dict[str, Any]]:
        return [f["event"] for f in self.frames if f["event"]["subscription_id"] == sid]


def test_stream_filters_renews_expires_and_drops(core: Core) -> None:
    streams = core.dispatcher.streams
    core.daemon.bus.subscribe("", streams.on_event)
    core.daemon.bus.subscribe_private(streams.on_private)
    ta, tb = core.tenant("ta"), core.tenant("tb")
    core.admin.ok("instance.create", driver="sim", instance_id="da", tenant="ta")
    core.admin.ok("instance.create", driver="sim", instance_id="db", tenant="tb")
    sa = ta.ok("events.subscribe", topics=["instance."])["subscription_id"]
    sb = tb.ok("events.subscribe")["subscription_id"]
    sall = core.admin.ok("events.subscribe", topics=["instance.da.", "instance.db."])
    sadm = sall["subscription_id"]
    assert sall["ttl"] > 0
    out = Collected()
    core.online(core.admin, "da")
    core.online(core.admin, "db")
    wait_until(lambda: (streams.flush(out), {"da", "db"} <= _ids(out.of(sadm)))[1])
    assert _ids(out.of(sa)) == {"da"} and _ids(out.of(sb)) == {"db"}
    # bad input changes nothing
    code, details = ta.error("events.subscribe", topics="instance.")
    assert (code, details["field"]) == ("bad_request", "topics")
    code, details = ta.error("events.renew", subscription_id="nope")
    assert (code, details["field"]) == ("bad_request", "subscription_id")
    # another tenant's subscription is not_found, for renew, unsubscribe and pair
    assert tb.error("events.renew", subscription_id=sa)[0] == "not_found"
    assert tb.error("events.unsubscribe", subscription_id=sa)[0] == "not_found"
    assert tb.error("instance.pair", instance_id="db", subscription_id=sa)[0] == "not_found"
    assert ta.ok("events.renew", subscription_id=sa)["subscription_id"] == sa
    # unsubscribe stops the flow
    assert ta.ok("events.unsubscribe", subscription_id=sa)["unsubscribed"] is True
    before = len(out.of(sa))
    core.admin.ok("instance.stop", instance_id="da")
    wait_until(lambda: (streams.flush(out), "stopped" in _states(out.of(sadm), "da"))[1])
    assert len(out.of(sa)) == before
    assert ta.error("events.renew", subscription_id=sa)[0] == "not_found"
    # a subscription nobody renews expires
    streams.ttl = 0.05
    short = ta.ok("events.subscribe")["subscription_id"]
    time.sleep(0.1)  # past the ttl on purpose: expiry is what is tested
    assert streams.expire() >= 1
    assert ta.error("events.renew", subscription_id=short)[0] == "not_found"
    streams.ttl = 30.0
    # a slow reader loses events beyond its queue, counted; the daemon does not wait
    streams.queue_max = 2
    slow = tb.ok("events.subscribe", topics=["message."])["subscription_id"]
    for n in range(5):
        tb.ok("message.send", instance_id="db", to=TO, text=f"m{n}")
    wait_until(lambda: tb.ok("events.renew", subscription_id=slow)["dropped"] >= 1)
    streams.flush(out)
    assert len(out.of(slow)) == 2


def _ids(events: list[dict[str, Any]]) -> set[str]:
    return {e["body"].get("instance_id") for e in events}


def _states(events: list[dict[str, Any]], iid: str) -> list[str]:
    return [
        e["body"].get("state")
        for e in events
        if e["topic"] == f"instance.{iid}.state" and e["body"].get("instance_id") == iid
    ]


def test_a_reader_stays_subscribed_and_a_silent_one_expires(
    daemon: TestDaemon, admin: Client
) -> None:
    from tests.control.conftest import Raw

    assert daemon.control is not None
    streams = daemon.control.dispatcher.streams
    streams.ttl = 0.6  # renewed every 0.2 s by the client library

    def subscriptions() -> int:
        return int(admin.daemon_status()["control"]["subscriptions"])

    raw = Raw(daemon.cfg.control_endpoint)
    try:
        tok = read_admin_token(daemon.cfg.state_dir)
        req = {"v": 1, "id": 1, "cmd": "events.subscribe", "token": tok}
        reply = raw.ask(msgpack.packb(req))
        assert reply is not None and reply["ok"] and subscriptions() == 1
        # never renewed: gone within ttl plus the once-a-second sweep
        wait_until(lambda: subscriptions() == 0, timeout=5)
        assert admin.daemon_status()["control"]["stream_expired"] >= 1
    finally:
        raw.close()
    with admin.subscribe() as reading:
        assert reading.ttl == 0.6
        reading.recv(2.5)  # one long wait: it renews on the way
        assert subscriptions() == 1
        assert admin.call("events.renew", {"subscription_id": reading.id})  # still alive
    assert subscriptions() == 0  # closed: unsubscribed
