"""The inbox table: stored once per WhatsApp id, scoped by tenant and incarnation, paged, pruned
with retention (issue 12)."""

from __future__ import annotations

import pytest

from tests.store.store_helpers import T0, FakeWall, instance
from waz_actors.errors import BadRequest, NotFound
from waz_actors.store import Store
from waz_actors.store.retention import DAY

ALICE = "5511988887777@s.whatsapp.net"


def add(store: Store, wa_id: str, iid: str = "i1", **kw: object) -> tuple[object, bool]:
    args: dict[str, object] = {"chat": ALICE, "sender": ALICE, "sent_at": T0, "text": "hi"}
    args.update(kw)
    return store.add_incoming(iid, wa_id=wa_id, **args).result()  # type: ignore[arg-type]


def test_stored_once_per_whatsapp_id(store: Store) -> None:
    first, created = add(store, "W1", text="hello")
    assert created is True
    again, created = add(store, "W1", text="changed")
    assert created is False and again == first  # the first row, unchanged
    add(store, "W2", media={"mime": "image/png", "size": 3}, media_data=b"png")
    rows = store.list_inbox("i1")
    assert [r.wa_id for r in rows] == ["W1", "W2"] and rows[0].text == "hello"
    assert rows[1].kept is True and store.inbox_media(rows[1].inbox_id) == b"png"
    assert rows[0].kept is False and store.inbox_media(rows[0].inbox_id) is None


def test_paging_and_bad_arguments(store: Store) -> None:
    for n in range(5):
        add(store, f"W{n}")
    page = store.list_inbox("i1", limit=2)
    assert [r.wa_id for r in page] == ["W0", "W1"]
    assert [r.wa_id for r in store.list_inbox("i1", after=page[-1].inbox_id)] == ["W2", "W3", "W4"]
    with pytest.raises(BadRequest):
        store.list_inbox("i1", limit=0)
    with pytest.raises(BadRequest):
        store.add_incoming("i1", wa_id="", chat=ALICE, sender=ALICE, sent_at=T0)
    with pytest.raises(NotFound):
        add(store, "W9", iid="nobody")


def test_scoped_by_tenant_and_incarnation(store: Store) -> None:
    old, _ = add(store, "W1")
    store.delete_instance("i1")
    store.create_instance(instance("i1", "t2"))
    assert store.list_inbox("i1") == []
    assert not store.inbox_owned("i1", old.inbox_id)  # type: ignore[attr-defined]
    # the same WhatsApp id in the new incarnation is a new row of its own
    new, created = add(store, "W1")
    assert created and store.inbox_owned("i1", new.inbox_id)  # type: ignore[attr-defined]
    assert [r.tenant for r in store.list_inbox("i1")] == ["t2"]


def test_pruned_with_retention(store: Store, wall: FakeWall) -> None:
    wall.t = T0
    add(store, "OLD")
    wall.t = T0 + 40 * DAY
    add(store, "NEW")
    cut = wall.t - 30 * DAY
    assert store.prune(cut, dry_run=True)["inbox"] == 1
    assert store.prune(cut)["inbox"] == 1
    assert [r.wa_id for r in store.list_inbox("i1")] == ["NEW"]
    assert store.prune(None)["inbox"] == 0  # 0 days keeps everything
