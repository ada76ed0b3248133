"""Every command of docs/protocol.md over real ipc sockets against a real daemon."""

from __future__ import annotations

import pytest

from tests.control.conftest import TestDaemon, online
from tests.waiting import wait_until
from waz_actors.control.client import Client, ClientError

PHONE = "5511999999999"


def err(fn, *a, **kw) -> ClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as e:
        fn(*a, **kw)
    return e.value


def test_ping_and_status(admin: Client) -> None:
    pong = admin.ping()
    assert pong["pong"] is True and pong["version"] and pong["uptime"] >= 0
    st = admin.daemon_status()
    assert st["instances"] == 0 and "states" in st and "control" in st
    assert st["control"]["received"] >= 2


def test_instance_lifecycle(admin: Client) -> None:
    assert admin.instance_create("sim", "shop-1", tenant="acme") == "shop-1"
    generated = admin.instance_create("sim")
    assert generated and generated != "shop-1"
    assert err(admin.instance_create, "sim", "shop-1").code == "exists"
    listed = {i["instance_id"]: i for i in admin.instance_list()}
    assert set(listed) == {"shop-1", generated}
    assert set(listed["shop-1"]) == {"instance_id", "state", "since", "queue_depth", "health"}
    got = admin.instance_get("shop-1")
    assert got["tenant"] == "acme" and got["state"] == "stopped" and "breaker" in got

    online(admin, "shop-1")
    assert [i["instance_id"] for i in admin.instance_list(state="online")] == ["shop-1"]
    assert admin.instance_stop("shop-1") == "stopped"
    assert admin.instance_restart("shop-1") in ("connecting", "online", "backoff")
    wait_until(lambda: admin.instance_get("shop-1")["state"] == "online")
    assert err(admin.instance_pair, "shop-1").code == "invalid_state"  # online
    assert admin.instance_reset("shop-1") in ("online", "connecting", "stopped")
    assert admin.instance_logout("shop-1") == "logged_out"
    pair = admin.instance_pair("shop-1")
    assert pair["qr"] and pair["expires_at"] > 0
    # with a phone number the answer is the pairing code, never the QR shown meanwhile
    admin.instance_logout("shop-1")
    assert set(admin.instance_pair("shop-1", PHONE)) == {"code"}
    assert set(admin.instance_pair("shop-1", PHONE)) == {"code"}  # already pairing: a new code
    assert err(admin.instance_pair, "shop-1", "12ab").code == "bad_request"
    # an instance whose session is still linked comes online: told so at once, not a timeout
    admin.instance_create("sim", "linked")
    e = err(admin.instance_pair, "linked")
    assert e.code == "invalid_state" and "already linked" in e.message
    assert admin.instance_get("linked")["state"] == "online"

    deleted = admin.instance_delete(generated)
    assert deleted == {"instance_id": generated, "deleted": True, "cancelled": []}
    assert err(admin.instance_get, generated).code == "not_found"


def test_messages_and_queue(admin: Client, daemon: TestDaemon) -> None:
    admin.instance_create("sim", "q1")
    # stopped instance: messages wait durably
    a = admin.message_send("q1", PHONE, text="one")
    assert a["status"] == "queued" and a["message_id"].startswith("3EB0")
    stored = daemon.store.get_message(a["message_id"])
    assert stored is not None and stored.text == "one"  # durable before the reply
    b = admin.message_send(
        "q1", PHONE + "@s.whatsapp.net", media={"url": "https://x.test/a.jpg", "caption": "c"}
    )
    c = admin.message_send("q1", PHONE, text="three", idempotency_key="k-1", ttl=60)
    again = admin.message_send("q1", PHONE, text="three", idempotency_key="k-1")
    assert again["message_id"] == c["message_id"] and again["created"] is False

    st = admin.queue_status("q1")
    assert st["depth"] == 3 and st["health"] in ("healthy", "warning", "critical")
    assert any("instance.start" in r for r in st["recommendations"])
    page = admin.queue_list("q1", limit=2)
    assert [m["message_id"] for m in page["messages"]] == [a["message_id"], b["message_id"]]
    rest = admin.queue_list("q1", after=page["next"])
    assert [m["message_id"] for m in rest["messages"]] == [c["message_id"]]
    assert admin.queue_list("q1", status="sent")["messages"] == []

    assert admin.message_cancel(b["message_id"])["status"] == "cancelled"
    assert err(admin.message_cancel, b["message_id"]).code == "invalid_state"
    got = admin.message_get(b["message_id"])
    assert got["status"] == "cancelled"
    assert [h["status"] for h in got["history"]] == ["queued", "cancelled"]
    assert admin.queue_purge("q1") == 2
    assert admin.queue_status("q1")["depth"] == 0


def test_retry_after_failure(admin: Client) -> None:
    admin.instance_create("sim", "r1")
    online(admin, "r1")
    admin.sim_fault("r1", "send_fail", permanent=True)
    m = admin.message_send("r1", PHONE, text="x")
    wait_until(lambda: admin.message_get(m["message_id"])["status"] == "failed")
    assert admin.queue_retry("r1", [m["message_id"]]) == [m["message_id"]]
    wait_until(lambda: admin.message_get(m["message_id"])["status"] == "sent")
    stats = admin.sim_stats()
    assert stats["instances"]["r1"]["delivered"] == 1
    assert stats["instances"]["r1"]["duplicates"] == 0


def test_delete_cancels_queued_messages(admin: Client) -> None:
    admin.instance_create("sim", "d1")
    m = admin.message_send("d1", PHONE, text="x")
    assert admin.instance_delete("d1")["cancelled"] == [m["message_id"]]
    assert admin.message_get(m["message_id"])["status"] == "cancelled"


def test_sim_fault_conflict(admin: Client) -> None:
    admin.instance_create("sim", "f1")
    online(admin, "f1")
    assert admin.sim_fault("f1", "conflict") == {"injected": "conflict"}
    wait_until(lambda: admin.instance_get("f1")["state"] == "cooldown")
    e = err(admin.sim_fault, "f1", "no_such_fault")
    assert e.code == "bad_request"


def test_tokens(admin: Client, daemon: TestDaemon) -> None:
    made = admin.token_create("acme", "panel")
    assert made["token"].startswith("waz_") and made["tenant"] == "acme"
    ids = {t["token_id"]: t for t in admin.token_list()}
    assert ids[made["token_id"]]["label"] == "panel"
    assert all("token" not in t for t in ids.values())  # the secret is shown once
    assert any(t["admin"] for t in ids.values())
    tenant = Client(daemon.cfg.control_endpoint, made["token"])
    assert tenant.ping()["pong"]
    assert admin.token_revoke(made["token_id"]) == {"token_id": made["token_id"], "revoked": True}
    assert err(tenant.ping).code == "unauthorized"
    admin_id = next(t["token_id"] for t in ids.values() if t["admin"])
    assert err(admin.token_revoke, admin_id).code == "invalid_state"
    assert err(admin.token_revoke, "0" * 12).code == "not_found"
    assert admin.ping()["pong"]
    tenant.close()


def test_validation_before_anything_changes(admin: Client, daemon: TestDaemon) -> None:
    admin.instance_create("sim", "v1")
    before = daemon.store.queue_stats("v1")
    cases = [
        ({"to": "123"}, "to"),
        ({"to": PHONE}, "text"),  # neither text nor media
        ({"to": PHONE, "text": 5}, "text"),
        ({"to": PHONE, "media": {"url": "ftp://x/y"}}, "media"),
        ({"to": PHONE, "text": "x", "ttl": 0}, "ttl"),
        ({"to": PHONE, "text": "x", "idempotency_key": "a b"}, "idempotency_key"),
        ({"to": PHONE, "text": "x", "colour": "red"}, "colour"),
    ]
    for extra, field in cases:
        e = err(admin.call, "message.send", {"instance_id": "v1", **extra})
        assert e.code == "bad_request", extra
        assert e.details["field"] == field, extra
    big = "x" * (daemon.cfg.queue.max_text_length + 1)
    e = err(admin.message_send, "v1", PHONE, text=big)
    assert e.code == "too_large" and e.details["field"] == "text"
    assert err(admin.message_send, "nope", PHONE, text="x").code == "not_found"
    assert err(admin.message_get, "3EB0NOPE").code == "not_found"
    assert err(admin.instance_create, "carrier-pigeon").details["field"] == "driver"
    assert err(admin.queue_list, "v1", limit=0).details["field"] == "limit"
    assert daemon.store.queue_stats("v1") == before


def test_queue_full(start_daemon) -> None:  # type: ignore[no-untyped-def]
    from waz_actors.control.auth import read_admin_token

    d = start_daemon(queue={"max_size": 2})
    c = Client(d.cfg.control_endpoint, read_admin_token(d.cfg.state_dir))
    c.instance_create("sim", "full")
    c.message_send("full", PHONE, text="1")
    c.message_send("full", PHONE, text="2")
    assert err(c.message_send, "full", PHONE, text="3").code == "queue_full"
    assert d.store.queue_stats("full")["depth"] == 2
    c.close()


def test_send_on_a_full_disk_answers_storage_full(admin: Client, daemon: TestDaemon) -> None:
    """Issue 11 item 12: a full disk is `storage_full` (nothing queued; resend later with the
    same idempotency_key), not `internal`."""
    from tests.store.store_helpers import fill_disk

    admin.instance_create("sim", "disk")
    disk = fill_disk(daemon.store)
    disk.full = True
    e = err(admin.message_send, "disk", PHONE, text="x", idempotency_key="k1")
    assert e.code == "storage_full" and "disk is full" in e.message
    disk.full = False
    assert daemon.store.queue_stats("disk")["depth"] == 0  # nothing was queued
    sent = admin.message_send("disk", PHONE, text="x", idempotency_key="k1")
    assert sent["created"] is True and sent["status"] == "queued"


def test_disk_full_is_told_from_other_errors() -> None:
    import errno
    import sqlite3

    from waz_actors.errors import StorageFull, disk_full

    assert disk_full(sqlite3.OperationalError("database or disk is full"))
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(StorageFull("full"))
    assert not disk_full(sqlite3.OperationalError("database is locked"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert StorageFull("x").to_wire()["code"] == "storage_full"


def test_shutting_down_refuses_new_work(admin: Client, daemon: TestDaemon) -> None:
    admin.instance_create("sim", "s1")
    daemon.fleet.accepting = False  # what Daemon.stop does first
    assert err(admin.message_send, "s1", PHONE, text="x").code == "shutting_down"
    assert err(admin.instance_start, "s1").code == "shutting_down"
    assert admin.ping()["pong"]  # reads still answer while draining
    assert daemon.store.queue_stats("s1")["depth"] == 0
    daemon.fleet.accepting = True


def test_daemon_events_reach_subscribers(admin: Client, daemon: TestDaemon) -> None:
    from waz_actors.control.client import EventStream

    admin.instance_create("sim", "ev1")
    with EventStream(daemon.cfg.events_endpoint, ["instance.ev1.", "message.ev1."]) as events:
        # SUB joins asynchronously: poke a state change until the subscription is live
        def first() -> object:
            admin.instance_stop("ev1")
            return events.recv(timeout=0.05)

        topic, body = wait_until(first)
        assert topic == "instance.ev1.state" and body["instance_id"] == "ev1"
        online(admin, "ev1")
        m = admin.message_send("ev1", PHONE, text="x")
        seen: list[tuple[str, str]] = []

        def sent() -> bool:
            got = events.recv(timeout=0.5)
            if got and got[0] == "message.ev1.status":
                seen.append((got[1]["message_id"], got[1]["status"]))
            return (m["message_id"], "sent") in seen

        wait_until(sent)
