"""campaign.* through the Dispatcher over a real store and fleet (sim), no sockets."""

from __future__ import annotations

from tests.control.dispatch_util import Caller, Core
from tests.waiting import wait_until


def _online(c: Caller, *ids: str) -> None:
    for iid in ids:
        c.ok("instance.create", driver="sim", instance_id=iid)
        c.ok("instance.start", instance_id=iid)
    wait_until(lambda: all(c.ok("instance.get", instance_id=i)["state"] == "online" for i in ids))


def _rows(n: int, start: int = 0) -> list[dict[str, object]]:
    return [{"to": f"62812{start + i:07d}1", "vars": {"name": f"N{i}"}} for i in range(n)]


def test_campaign_runs_to_done_with_one_message_per_recipient(core: Core) -> None:
    acme = core.tenant("acme")
    _online(acme, "a1", "a2", "a3")
    made = acme.ok(
        "campaign.create",
        name="promo",
        instance_ids=["a1", "a2", "a3"],
        text="{Hi|Hello} {name}",
        recipients=_rows(50),
    )
    cid = made["campaign_id"]
    assert made["state"] == "draft" and made["added"] == 50
    again = acme.ok("campaign.add_recipients", campaign_id=cid, recipients=_rows(60))
    assert again == {"campaign_id": cid, "added": 10, "duplicates": 50}
    acme.ok("campaign.start", campaign_id=cid)
    wait_until(lambda: acme.ok("campaign.get", campaign_id=cid)["state"] == "done", timeout=30)
    got = acme.ok("campaign.get", campaign_id=cid)
    assert got["counts"]["sent"] == 60 and sum(got["counts"].values()) == 60
    assert set(got["per_instance"]) == {"a1", "a2", "a3"}
    delivered = core.daemon.sim.stats()["totals"]["delivered"]
    assert delivered == 60
    page = acme.ok("campaign.recipients", campaign_id=cid, limit=5)
    assert len(page["recipients"]) == 5 and page["next"] == page["recipients"][-1]["seq"]
    first = page["recipients"][0]
    msg = acme.ok("message.get", message_id=first["message_id"])
    assert msg["text"] == first["text"] and msg["text"].endswith(" N0")
    assert msg["idempotency_key"] == f"{cid}:{first['to']}"
    assert [c["campaign_id"] for c in acme.ok("campaign.list")["campaigns"]] == [cid]


def test_validation_and_tenants(core: Core) -> None:
    acme, globex = core.tenant("acme"), core.tenant("globex")
    acme.ok("instance.create", driver="sim", instance_id="a1")
    globex.ok("instance.create", driver="sim", instance_id="g1")
    assert acme.error("campaign.create", name="x", instance_ids=["g1"], text="hi") == (
        "not_found",
        {"field": "instance_ids"},
    )
    rows = [*_rows(1), {"to": "6281200000001"}]
    code, details = acme.error(
        "campaign.create", name="x", instance_ids=["a1"], text="Hi {name}", recipients=rows
    )
    assert code == "bad_request" and details == {"field": "recipients", "row": 1}
    assert acme.ok("campaign.list")["campaigns"] == []  # nothing created
    assert acme.error("campaign.create", name="x", instance_ids=["a1"])[1] == {"field": "text"}
    bad_window = {"from": "8am", "to": "20:00"}
    code, details = acme.error(
        "campaign.create", name="x", instance_ids=["a1"], text="t", window=bad_window
    )
    assert details == {"field": "window"}
    cid = acme.ok("campaign.create", name="x", instance_ids=["a1"], text="t")["campaign_id"]
    assert globex.error("campaign.get", campaign_id=cid)[0] == "not_found"
    assert globex.error("campaign.start", campaign_id=cid)[0] == "not_found"
    assert globex.ok("campaign.list")["campaigns"] == []
    assert acme.error("campaign.resume", campaign_id=cid)[0] == "invalid_state"
    too_many = _rows(1001)
    assert acme.error("campaign.add_recipients", campaign_id=cid, recipients=too_many)[1] == {
        "field": "recipients"
    }
    assert acme.error("campaign.list", state="asleep")[1] == {"field": "state"}
    assert acme.error("campaign.recipients", campaign_id=cid, status="x")[1] == {"field": "status"}
    acme.ok("campaign.cancel", campaign_id=cid)
    assert acme.ok("campaign.get", campaign_id=cid)["state"] == "cancelled"
