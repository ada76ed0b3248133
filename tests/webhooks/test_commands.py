"""webhook.* through the Dispatcher (real store, real daemon, real HTTP receiver)."""

from __future__ import annotations

from pathlib import Path

from tests.control.conftest import TestDaemon, make_config
from tests.control.dispatch_util import Core
from tests.waiting import wait_until
from tests.webhooks.receiver import Receiver
from waz_actors.store.webhooks import WebhookRecord


def test_create_list_get_delete_and_tenant_isolation(hooked: Core, receiver: Receiver) -> None:
    acme, globex = hooked.tenant("acme"), hooked.tenant("globex")
    made = acme.ok("webhook.create", url=receiver.url(), events=["message.*"])
    wid = made["webhook_id"]
    assert made["secret"].startswith("whsec_") and len(made["secret"]) > 30
    assert made["tenant"] == "acme" and made["events"] == ["message.*"]
    own = acme.ok("webhook.create", url=receiver.url("/b"), secret="s" * 20)
    assert own["secret"] == "s" * 20 and own["events"] == ["*"]
    listed = acme.ok("webhook.list")["webhooks"]
    assert {h["webhook_id"] for h in listed} == {wid, own["webhook_id"]}
    assert all("secret" not in h for h in listed)
    got = acme.ok("webhook.get", webhook_id=wid)
    assert got["url"] == receiver.url() and "secret" not in got and got["deliveries"] == {}
    # another tenant: nothing to see, nothing to touch
    assert globex.ok("webhook.list")["webhooks"] == []
    for cmd in ("webhook.get", "webhook.delete", "webhook.deliveries", "webhook.test"):
        assert globex.error(cmd, webhook_id=wid) == ("not_found", {"field": "webhook_id"})
    assert globex.error("webhook.redeliver", webhook_id=wid)[0] == "not_found"
    # the admin sees all and may make a daemon-wide one, which tenants do not see
    wide = hooked.admin.ok("webhook.create", url=receiver.url("/all"))
    assert wide["tenant"] is None
    assert len(hooked.admin.ok("webhook.list")["webhooks"]) == 3
    assert acme.error("webhook.get", webhook_id=wide["webhook_id"])[0] == "not_found"
    assert acme.ok("webhook.delete", webhook_id=wid) == {"webhook_id": wid, "deleted": True}
    assert acme.error("webhook.get", webhook_id=wid)[0] == "not_found"


def test_bad_input_names_the_field_and_changes_nothing(hooked: Core, receiver: Receiver) -> None:
    acme = hooked.tenant("acme")
    bad = [
        ({}, "url"),
        ({"url": "ftp://x.test/"}, "url"),
        ({"url": receiver.url(), "events": ["message.nope"]}, "events"),
        ({"url": receiver.url(), "events": []}, "events"),
        ({"url": receiver.url(), "events": "message.*"}, "events"),
        ({"url": receiver.url(), "secret": "short"}, "secret"),
        ({"url": receiver.url(), "tenant": "globex"}, "tenant"),
    ]
    for args, field in bad:
        code, details = acme.error("webhook.create", **args)
        assert (code, details) == ("bad_request", {"field": field}), args
    assert acme.ok("webhook.list")["webhooks"] == []
    wid = acme.ok("webhook.create", url=receiver.url())["webhook_id"]
    assert acme.error("webhook.deliveries", webhook_id=wid, status="lost")[1] == {"field": "status"}
    assert acme.error("webhook.deliveries", webhook_id=wid, after=-1)[1] == {"field": "after"}
    assert acme.error("webhook.redeliver", webhook_id=wid, event_ids="x")[1] == {
        "field": "event_ids"
    }


def test_ping_is_delivered_signed_and_listed(hooked: Core, receiver: Receiver) -> None:
    acme = hooked.tenant("acme")
    made = acme.ok("webhook.create", url=receiver.url())
    wid = made["webhook_id"]
    sent = acme.ok("webhook.test", webhook_id=wid)
    assert sent["event"] == "ping"
    wait_until(lambda: len(receiver.hits) == 1)
    hit = receiver.hits[0]
    assert hit.signed_by(made["secret"]) and not hit.signed_by("other secret 123")
    assert hit.headers["x-waz-event"] == "ping"
    assert hit.headers["x-waz-event-id"] == sent["event_id"] == hit.body["id"]
    assert hit.body["tenant"] == "acme" and hit.body["event"] == "ping"
    assert set(hit.body) == {"id", "event", "time", "tenant", "instance_id", "data"}
    wait_until(
        lambda: acme.ok("webhook.deliveries", webhook_id=wid, status="delivered")["deliveries"]
    )
    (d,) = acme.ok("webhook.deliveries", webhook_id=wid)["deliveries"]
    assert d["event_id"] == sent["event_id"] and d["attempts"] == 1 and d["last_code"] == 200
    assert d["next_at"] is None and d["status"] == "delivered"
    assert acme.ok("webhook.get", webhook_id=wid)["deliveries"] == {"delivered": 1}
    # redeliver by event id: the same event (same id) again
    assert (
        acme.ok("webhook.redeliver", webhook_id=wid, event_ids=[sent["event_id"]])["redelivering"]
        == 1
    )
    wait_until(lambda: len(receiver.hits) == 2)
    assert receiver.hits[1].body["id"] == sent["event_id"]


def test_private_targets_are_refused_by_default(tmp_path: Path) -> None:
    d = TestDaemon(make_config(tmp_path / "state", tmp_path / "run"), with_control=False)
    d.start()
    try:
        core = Core(d)
        for url in (
            "http://127.0.0.1:8080/x",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://[::1]/",
            "http://localhost/",
        ):
            code, details = core.admin.error("webhook.create", url=url)
            assert (code, details) == ("bad_request", {"field": "url"}), url
        # a webhook that got past creation (a name that resolved elsewhere then, say) is
        # refused again at every connection: the receiver never hears of it
        receiver = Receiver()
        rec = WebhookRecord("wh_x", "t1", receiver.url(), ("*",), "s" * 20, True, None, 0.0)
        d.store.webhooks.create_webhook(rec).result(5)
        core.admin.ok("webhook.test", webhook_id="wh_x")
        wait_until(
            lambda: (
                core.admin.ok("webhook.deliveries", webhook_id="wh_x")["deliveries"][0]["attempts"]
                >= 1
            )
        )
        (got,) = core.admin.ok("webhook.deliveries", webhook_id="wh_x")["deliveries"]
        assert "refused" in got["last_error"] and got["last_code"] is None
        assert receiver.hits == []
        receiver.close()
        core.dispatcher.close()
    finally:
        d.stop(timeout=5)
