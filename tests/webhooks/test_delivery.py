"""Delivery end to end in one daemon: every event kind, signed, per-tenant, in order per
instance; errors and a receiver down for a while; 410; Retry-After; the breaker; max_age."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control.dispatch_util import PHONE, Core
from tests.waiting import wait_until
from tests.webhooks.conftest import hooked_core
from tests.webhooks.receiver import Receiver


def statuses(r: Receiver, path: str, message_id: str) -> list[str]:
    return [
        e["data"]["status"]
        for e in r.events(path)
        if e["event"] == "message.status" and e["data"]["message_id"] == message_id
    ]


def test_every_event_kind_reaches_its_tenant_only_signed(hooked: Core, receiver: Receiver) -> None:
    acme, globex = hooked.tenant("acme"), hooked.tenant("globex")
    a = acme.ok("webhook.create", url=receiver.url("/acme"))
    g = globex.ok("webhook.create", url=receiver.url("/globex"), events=["message.status"])
    wide = hooked.admin.ok("webhook.create", url=receiver.url("/all"), events=["instance.*"])
    acme.ok("instance.create", driver="sim", instance_id="a1")
    globex.ok("instance.create", driver="sim", instance_id="g1")
    hooked.online(acme, "a1")
    hooked.online(globex, "g1")
    mid = acme.ok("message.send", instance_id="a1", to=PHONE, text="hello")["message_id"]
    gid = globex.ok("message.send", instance_id="g1", to=PHONE, text="hi")["message_id"]
    hooked.admin.ok(
        "sim.fault", instance_id="a1", kind="incoming", params={"from": PHONE, "text": "reply"}
    )
    wait_until(lambda: "sent" in statuses(receiver, "/acme", mid), what="acme's sent")
    wait_until(lambda: "sent" in statuses(receiver, "/globex", gid), what="globex's sent")
    wait_until(lambda: any(e["event"] == "message.in" for e in receiver.events("/acme")))
    # order kept for one instance: the statuses of a message in the order they happened
    seq = statuses(receiver, "/acme", mid)
    assert seq[:3] == ["queued", "sending", "sent"], seq
    acme_events = receiver.events("/acme")
    assert {e["tenant"] for e in acme_events} == {"acme"}
    assert {e["instance_id"] for e in acme_events} == {"a1"}
    kinds = {e["event"] for e in acme_events}
    assert {"message.status", "message.in", "instance.state"} <= kinds
    incoming = next(e for e in acme_events if e["event"] == "message.in")
    assert incoming["data"]["text"] == "reply" and incoming["data"]["from"].startswith(PHONE)
    state = next(e for e in acme_events if e["event"] == "instance.state")
    assert set(state["data"]) == {"state", "previous", "reason", "code"}
    # globex asked for message.status only, and gets only its own
    assert {(e["event"], e["tenant"]) for e in receiver.events("/globex")} == {
        ("message.status", "globex")
    }
    wait_until(lambda: {e["tenant"] for e in receiver.events("/all")} == {"acme", "globex"})
    assert {e["event"] for e in receiver.events("/all")} == {"instance.state"}
    secrets = {"/acme": a["secret"], "/globex": g["secret"], "/all": wide["secret"]}
    for hit in receiver.hits:
        assert hit.signed_by(secrets[hit.path]), hit.path
        assert hit.headers["x-waz-event-id"] == hit.body["id"]
        assert hit.headers["x-waz-event"] == hit.body["event"]
        assert "qr" not in hit.raw.decode().lower() or hit.body["event"] == "instance.state"


def test_errors_and_a_receiver_down_for_a_while(hooked: Core, receiver: Receiver) -> None:
    acme = hooked.tenant("acme")
    acme.ok("webhook.create", url=receiver.url(), events=["message.status"])
    acme.ok("instance.create", driver="sim", instance_id="a1")
    hooked.online(acme, "a1")
    answers = iter([500, 502, 404])  # a few errors, then all well
    receiver.respond = lambda hit: (next(answers, 200), {})
    first = acme.ok("message.send", instance_id="a1", to=PHONE, text="one")["message_id"]
    wait_until(lambda: "sent" in statuses(receiver, "/hook", first))
    receiver.down()
    ids = [
        acme.ok("message.send", instance_id="a1", to=PHONE, text=f"m{i}")["message_id"]
        for i in range(5)
    ]
    wait_until(lambda: all(acme.ok("message.get", message_id=m)["status"] == "sent" for m in ids))
    time.sleep(0.3)  # the receiver stays down while retries fail (connection refused)
    receiver.up()
    for m in [first, *ids]:
        wait_until(lambda m=m: "sent" in statuses(receiver, "/hook", m), what=m)  # type: ignore[misc]
    # at least once, each event in order, and nothing out of order for the instance
    delivered = [
        e["data"]["message_id"] for e in receiver.events() if e["data"]["status"] == "sent"
    ]
    assert [m for m in delivered if m in ids] == sorted(
        {m for m in delivered if m in ids}, key=ids.index
    )


def test_410_disables_the_webhook(hooked: Core, receiver: Receiver) -> None:
    acme = hooked.tenant("acme")
    wid = acme.ok("webhook.create", url=receiver.url())["webhook_id"]
    receiver.respond = lambda hit: (410, {})
    acme.ok("webhook.test", webhook_id=wid)
    wait_until(lambda: acme.ok("webhook.get", webhook_id=wid)["enabled"] is False)
    got = acme.ok("webhook.get", webhook_id=wid)
    assert "410" in got["disabled_reason"] and got["deliveries"] == {"failed": 1}
    acme.ok("webhook.test", webhook_id=wid)  # written, but not sent while disabled
    time.sleep(0.3)
    assert len(receiver.hits) == 1
    receiver.respond = lambda hit: (200, {})
    acme.ok("webhook.redeliver", webhook_id=wid)  # enables it again and retries the failed
    wait_until(lambda: len(receiver.hits) == 3)
    assert acme.ok("webhook.get", webhook_id=wid)["enabled"] is True


def test_retry_after_is_honoured(hooked: Core, receiver: Receiver) -> None:
    acme = hooked.tenant("acme")
    wid = acme.ok("webhook.create", url=receiver.url())["webhook_id"]
    answers = iter([(503, {"Retry-After": "1"})])
    receiver.respond = lambda hit: next(answers, (200, {}))
    acme.ok("webhook.test", webhook_id=wid)
    wait_until(lambda: len(receiver.hits) == 2, timeout=10)
    gap = receiver.hits[1].at - receiver.hits[0].at
    # backoff alone would retry after ~0.01 s (1 daemon s at time_scale 0.01)
    assert gap >= 0.9, gap
    wait_until(lambda: acme.ok("webhook.get", webhook_id=wid)["deliveries"] == {"delivered": 1})
    (d,) = acme.ok("webhook.deliveries", webhook_id=wid)["deliveries"]
    assert d["attempts"] == 2 and d["last_code"] == 200


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Core]:
    """Breaker after 2 failures, open for 500 daemon s (5 real s); max_age 150 daemon s."""
    c = hooked_core(tmp_path, breaker_failures=2, breaker_reset=500.0, max_age=150.0)
    yield c
    c.dispatcher.close()
    c.daemon.stop(timeout=5)


def test_the_breaker_keeps_a_dead_receiver_to_a_probe(strict: Core, receiver: Receiver) -> None:
    acme = strict.tenant("acme")
    wid = acme.ok("webhook.create", url=receiver.url())["webhook_id"]
    receiver.respond = lambda hit: (500, {})
    for _ in range(20):  # twenty events: without a breaker each would be retried every ~10 ms
        acme.ok("webhook.test", webhook_id=wid)
    wait_until(lambda: len(receiver.hits) >= 3)
    time.sleep(0.5)
    settled = len(receiver.hits)
    time.sleep(1.0)
    # open: nothing more until the probe, 5 real s away
    assert len(receiver.hits) == settled and settled <= 2 + 1 + 2, settled


def test_dead_after_max_age(strict: Core, receiver: Receiver) -> None:
    acme = strict.tenant("acme")
    wid = acme.ok("webhook.create", url=receiver.url())["webhook_id"]
    receiver.respond = lambda hit: (404, {})  # an answer: retried, never trips the breaker
    sent = acme.ok("webhook.test", webhook_id=wid)
    wait_until(
        lambda: acme.ok("webhook.deliveries", webhook_id=wid, status="dead")["deliveries"],
        timeout=15,
    )
    (d,) = acme.ok("webhook.deliveries", webhook_id=wid)["deliveries"]
    assert d["event_id"] == sent["event_id"] and d["status"] == "dead"
    assert d["attempts"] >= 3 and d["last_code"] == 404
    assert len(d["last_body"]) <= 256  # only a prefix of the receiver's answer is kept
    n = len(receiver.hits)
    time.sleep(0.3)
    assert len(receiver.hits) == n  # dead is final
    assert acme.ok("webhook.redeliver", webhook_id=wid)["redelivering"] == 1


def test_campaign_events_from_the_bus_reach_their_tenant(hooked: Core, receiver: Receiver) -> None:
    """campaign.progress/campaign.state are published on the bus by the campaign feeder (with
    `tenant` in the body); the bridge writes their deliveries, to that tenant's webhooks only."""
    acme, globex = hooked.tenant("acme"), hooked.tenant("globex")
    acme.ok("webhook.create", url=receiver.url("/acme"), events=["campaign.*"])
    globex.ok("webhook.create", url=receiver.url("/globex"), events=["campaign.*"])
    acme.ok("instance.create", driver="sim", instance_id="c1")
    hooked.online(acme, "c1")
    rows = [{"to": f"628120000{i:03d}1"} for i in range(2)]
    cid = acme.ok("campaign.create", name="promo", instance_ids=["c1"], text="hi", recipients=rows)[
        "campaign_id"
    ]
    acme.ok("campaign.start", campaign_id=cid)

    def states() -> list[str]:
        got = receiver.events("/acme")
        return [e["data"]["state"] for e in got if e["event"] == "campaign.state"]

    wait_until(lambda: "done" in states(), timeout=30, what="acme's campaign.state done")
    events = receiver.events("/acme")
    assert {(e["tenant"], e["data"]["campaign_id"]) for e in events} == {("acme", cid)}
    assert all("tenant" not in e["data"] and "time" not in e["data"] for e in events)
    assert receiver.events("/globex") == []
