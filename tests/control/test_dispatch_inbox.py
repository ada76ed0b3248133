"""Incoming messages, groups and contacts through the Dispatcher: a real store and fleet, the
sim driver (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.control.conftest import TestDaemon, make_config
from tests.control.dispatch_util import Caller, Core
from tests.waiting import wait_until
from waz_actors.control.auth import Auth
from waz_actors.control.commands import REGISTRY
from waz_actors.control.dispatch import Dispatcher
from waz_actors.drivers.sim.inbound import group_jid
from waz_actors.events import EventRecorder

SENDER = "5511988887777"


def incoming(core: Core, iid: str, **params: Any) -> None:
    core.admin.ok("sim.fault", instance_id=iid, kind="incoming", params=params)


def inbox(caller: Caller, iid: str, **args: Any) -> list[dict[str, Any]]:
    return list(caller.ok("inbox.list", instance_id=iid, **args)["messages"])


def test_incoming_is_stored_then_published_once(core: Core) -> None:
    acme = core.tenant("acme")
    acme.ok("instance.create", driver="sim", instance_id="a1")
    core.online(acme, "a1")
    rec = EventRecorder(core.daemon.bus, "message.a1.in")
    incoming(core, "a1", **{"from": SENDER, "text": "hi there", "wa_id": "3EB0AAAA"})
    wait_until(lambda: len(inbox(acme, "a1")) == 1, what="stored")
    assert rec.wait_for(lambda ev: len(ev) == 1)
    topic, body = rec.events[0]
    assert topic == "message.a1.in"
    row = inbox(acme, "a1")[0]
    assert body == row
    assert row["text"] == "hi there" and row["from"] == f"{SENDER}@s.whatsapp.net"
    assert row["chat"] == row["from"] and row["group"] is False and row["wa_id"] == "3EB0AAAA"
    # a redelivery of the same WhatsApp id is stored once and announced once
    incoming(core, "a1", **{"from": SENDER, "text": "hi there", "wa_id": "3EB0AAAA"})
    incoming(core, "a1", text="second")
    wait_until(lambda: len(inbox(acme, "a1")) == 2, what="second stored")
    assert rec.wait_for(lambda ev: len(ev) == 2)
    assert [m["text"] for m in inbox(acme, "a1")] == ["hi there", "second"]
    rec.close()


def test_inbox_pages_oldest_first(core: Core) -> None:
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="p1")
    core.online(a, "p1")
    for n in range(5):
        incoming(core, "p1", text=f"m{n}", wa_id=f"W{n}")
    wait_until(lambda: len(inbox(a, "p1")) == 5, what="five stored")
    page = a.ok("inbox.list", instance_id="p1", limit=2)
    assert [m["text"] for m in page["messages"]] == ["m0", "m1"] and page["next"]
    page2 = a.ok("inbox.list", instance_id="p1", limit=2, after=page["next"])
    assert [m["text"] for m in page2["messages"]] == ["m2", "m3"]
    rest = a.ok("inbox.list", instance_id="p1", after=page2["next"])
    assert [m["text"] for m in rest["messages"]] == ["m4"] and rest["next"] is None
    assert rest["last"] == rest["messages"][-1]["inbox_id"]
    # polling from the last seen: nothing new, the cursor stays
    empty = a.ok("inbox.list", instance_id="p1", after=rest["last"])
    assert empty["messages"] == [] and empty["last"] == rest["last"]


def test_group_message_and_media(core: Core) -> None:
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="g1")
    core.online(a, "g1")
    group = group_jid("g1", 1)
    media = {"mime": "image/jpeg", "data": b"\xff\xd8jpeg", "caption": "look"}
    incoming(core, "g1", **{"from": SENDER, "group": group, "media": media})
    wait_until(lambda: len(inbox(a, "g1")) == 1, what="stored")
    row = inbox(a, "g1")[0]
    assert row["group"] is True and row["chat"] == group
    assert row["from"] == f"{SENDER}@s.whatsapp.net"
    assert row["media"] == {"mime": "image/jpeg", "caption": "look", "size": 6}
    assert row["media_kept"] is False  # keep_media is off by default
    got = a.ok("message.download", instance_id="g1", inbox_id=row["inbox_id"])
    assert got["data"] == b"\xff\xd8jpeg" and got["source"] == "driver" and got["size"] == 6
    # a message without media has nothing to download
    incoming(core, "g1", text="plain")
    wait_until(lambda: len(inbox(a, "g1")) == 2, what="second")
    plain = inbox(a, "g1")[1]["inbox_id"]
    assert a.error("message.download", instance_id="g1", inbox_id=plain) == (
        "not_found",
        {"field": "inbox_id"},
    )


def test_group_list_and_contact_check(core: Core) -> None:
    acme = core.tenant("acme")
    acme.ok("instance.create", driver="sim", instance_id="c1")
    # not online: invalid_state, nothing asked
    assert acme.error("group.list", instance_id="c1")[0] == "invalid_state"
    assert acme.error("contact.check", instance_id="c1", numbers=[SENDER])[0] == "invalid_state"
    core.online(acme, "c1")
    groups = acme.ok("group.list", instance_id="c1")["groups"]
    assert [g["subject"] for g in groups] == ["Sim group 1", "Sim group 2", "Sim group 3"]
    assert groups[0] == {"id": group_jid("c1", 1), "subject": "Sim group 1", "participants": 3}
    found = acme.ok("contact.check", instance_id="c1", numbers=["+5511900000001", "5511900000010"])
    assert found["contacts"] == [
        {"number": "5511900000001", "on_whatsapp": True, "jid": "5511900000001@s.whatsapp.net"},
        {"number": "5511900000010", "on_whatsapp": False, "jid": None},
    ]
    # a send to a group JID is accepted and delivered like any other
    sent = acme.ok("message.send", instance_id="c1", to=groups[0]["id"], text="hello group")
    wait_until(
        lambda: acme.ok("message.get", message_id=sent["message_id"])["status"] == "sent",
        what="group send",
    )


def test_bad_arguments_change_nothing(core: Core) -> None:
    a = core.admin
    a.ok("instance.create", driver="sim", instance_id="b1")
    core.online(a, "b1")
    assert a.error("contact.check", instance_id="b1", numbers=["12"]) == (
        "bad_request",
        {"field": "numbers"},
    )
    assert a.error("contact.check", instance_id="b1", numbers=[])[1] == {"field": "numbers"}
    code, details = a.error("contact.check", instance_id="b1", numbers=[SENDER] * 501)
    assert code == "too_large" and details["field"] == "numbers"
    assert a.error("inbox.list", instance_id="b1", limit=0)[1] == {"field": "limit"}
    assert a.error("inbox.list", instance_id="b1", after="in_nope")[1] == {"field": "after"}
    assert a.error("message.download", instance_id="b1")[1] == {"field": "inbox_id"}
    code, details = a.error(
        "sim.fault", instance_id="b1", kind="incoming", params={"from": "not a phone"}
    )
    assert code == "bad_request"
    assert inbox(a, "b1") == []


def test_tenant_isolation(core: Core) -> None:
    acme, globex = core.tenant("acme"), core.tenant("globex")
    acme.ok("instance.create", driver="sim", instance_id="t1")
    core.online(acme, "t1")
    incoming(core, "t1", media={"mime": "text/plain", "data": "secret"})
    wait_until(lambda: len(inbox(acme, "t1")) == 1, what="stored")
    inbox_id = inbox(acme, "t1")[0]["inbox_id"]
    nf = ("not_found", {"field": "instance_id"})
    assert globex.error("inbox.list", instance_id="t1") == nf
    assert globex.error("group.list", instance_id="t1") == nf
    assert globex.error("contact.check", instance_id="t1", numbers=[SENDER]) == nf
    assert globex.error("message.download", instance_id="t1", inbox_id=inbox_id) == nf
    # globex's own instance cannot reach acme's row by its id either
    globex.ok("instance.create", driver="sim", instance_id="t2")
    assert globex.error("message.download", instance_id="t2", inbox_id=inbox_id) == (
        "not_found",
        {"field": "inbox_id"},
    )
    assert globex.error("inbox.list", instance_id="t2", after=inbox_id)[1] == {"field": "after"}
    # a deleted instance's inbox is not the inbox of a new instance with the same id
    core.admin.ok("instance.delete", instance_id="t1")
    globex.ok("instance.create", driver="sim", instance_id="t1")
    assert inbox(globex, "t1") == []


@pytest.fixture
def keeping(tmp_path: Path) -> Any:
    cfg = make_config(tmp_path / "state", tmp_path / "run", inbox={"keep_media": True})
    d = TestDaemon(cfg, with_control=False)
    d.start()
    auth = Auth(d.store, d.cfg.state_dir)
    dispatcher = Dispatcher(d.cfg, d.fleet, d.store, auth, REGISTRY, started_at=0.0)
    yield d, Caller(dispatcher, auth.ensure_admin_token())
    dispatcher.close()
    d.stop(timeout=5)


def test_keep_media_serves_from_the_store(keeping: Any) -> None:
    _d, a = keeping
    a.ok("instance.create", driver="sim", instance_id="k1")
    a.ok("instance.start", instance_id="k1")
    wait_until(lambda: a.ok("instance.get", instance_id="k1")["state"] == "online")
    params = {"media": {"mime": "text/plain", "data": "kept bytes", "filename": "a.txt"}}
    a.ok("sim.fault", instance_id="k1", kind="incoming", params=params)
    wait_until(lambda: len(inbox(a, "k1")) == 1, what="stored")
    row = inbox(a, "k1")[0]
    assert row["media_kept"] is True
    a.ok("instance.stop", instance_id="k1")  # the store answers: no driver needed
    got = a.ok("message.download", instance_id="k1", inbox_id=row["inbox_id"])
    assert got == {
        "inbox_id": row["inbox_id"],
        "mime": "text/plain",
        "filename": "a.txt",
        "size": 10,
        "source": "store",
        "data": b"kept bytes",
    }


def test_driver_requests_time_out_busy_and_end_with_the_session(tmp_path: Path) -> None:
    import threading

    from waz_actors.drivers.base import ListGroups
    from waz_actors.errors import InvalidState

    cfg = make_config(tmp_path / "state", tmp_path / "run", control={"ask_timeout": 0.5})
    d = TestDaemon(cfg, with_control=False)
    d.start()
    auth = Auth(d.store, d.cfg.state_dir)
    dispatcher = Dispatcher(d.cfg, d.fleet, d.store, auth, REGISTRY, started_at=0.0)
    a = Caller(dispatcher, auth.ensure_admin_token())
    try:
        a.ok("instance.create", driver="sim", instance_id="s1")
        a.ok("instance.start", instance_id="s1")
        wait_until(lambda: a.ok("instance.get", instance_id="s1")["state"] == "online")
        # the sim answers a send latency later: 300 daemon s = 3 real s, past the 0.5 s wait
        a.ok("sim.fault", instance_id="s1", kind="latency", params={"send": 300.0})
        assert a.error("group.list", instance_id="s1")[0] == "busy"
        # a request still waiting when the session ends is answered invalid_state at once
        outcome: list[BaseException] = []

        def ask() -> None:
            try:
                d.fleet.query("s1", ListGroups(""), timeout=30.0)
            except BaseException as e:
                outcome.append(e)

        asker = threading.Thread(target=ask)
        asker.start()
        # pending when the session drops, or arriving after: invalid_state either way, at once
        a.ok("sim.fault", instance_id="s1", kind="disconnect")
        asker.join(10)
        assert not asker.is_alive() and len(outcome) == 1
        assert isinstance(outcome[0], InvalidState)
    finally:
        dispatcher.close()
        d.stop(timeout=5)
