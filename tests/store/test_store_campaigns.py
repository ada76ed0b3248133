"""The campaign tables on both backends: recipients deduplicated, counts, contact-check marks."""

from __future__ import annotations

from collections.abc import Callable

from waz_actors.store import Store
from waz_actors.store.campaigns import CampaignRecord


def _campaign(cid: str) -> CampaignRecord:
    return CampaignRecord(
        campaign_id=cid,
        tenant="acme",
        name="blast",
        state="draft",
        instance_ids=("a", "b"),
        text="Halo {name}",
        media=None,
        start_at=None,
        window={"from": "08:00", "to": "20:00", "tz": "Asia/Jakarta"},
        delay_min=1.0,
        delay_max=2.0,
        check_numbers=True,
        duplicates=0,
        reason=None,
        created_at=1.0,
        updated_at=1.0,
    )


def test_recipients_are_deduplicated_counted_and_checked(make_store: Callable[..., Store]) -> None:
    s = make_store()
    s.campaigns.create(_campaign("c1")).result(5)
    got = s.campaigns.get("c1")
    assert got is not None and got.window == {"from": "08:00", "to": "20:00", "tz": "Asia/Jakarta"}
    assert got.instance_ids == ("a", "b") and got.check_numbers is True
    rows = [("6281200000001", {"name": "Ani"}, "Halo Ani"), ("6281200000002", {}, "Halo")]
    assert s.campaigns.add_recipients("c1", rows).result(5) == (2, 0)
    again = [*rows, ("6281200000010", {}, "Halo")]
    assert s.campaigns.add_recipients("c1", again).result(5) == (1, 2)
    assert s.campaigns.get("c1").duplicates == 2  # type: ignore[union-attr]
    assert s.campaigns.counts("c1")["pending"] == 3
    skipped = s.campaigns.mark_checked("c1", ["6281200000001"], ["6281200000010"]).result(5)
    assert skipped == 1
    counts = s.campaigns.counts("c1")
    assert counts["pending"] == 2 and counts["skipped"] == 1
