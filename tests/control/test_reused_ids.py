"""Issue 11, item 1, end to end: a reused instance id leaks nothing of the previous owner.

Tenant acme creates `shop-1`, sends (one delivered, one failed) and deletes it; tenant globex
creates `shop-1`. globex's queue.list, queue.status and queue.retry see none of acme's messages,
message.get of them is not_found, and acme's failed message is never sent again.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.control.conftest import TestDaemon, online, wait_until
from tests.control.test_tenants import code_of
from waz_actors.control.client import Client

SHOP = "shop-1"
PHONE = "5511999999999"


def test_a_reused_instance_id_shows_nothing_of_the_previous_owner(
    daemon: TestDaemon, admin: Client, tenant_client: Callable[[str], Client]
) -> None:
    acme, globex = tenant_client("acme"), tenant_client("globex")
    assert acme.instance_create("sim", SHOP) == SHOP
    online(admin, SHOP)
    sent = acme.message_send(SHOP, PHONE, text="acme: delivered")["message_id"]
    wait_until(lambda: acme.message_get(sent)["status"] == "sent")
    admin.sim_fault(SHOP, "send_fail", permanent=True)
    failed = acme.message_send(SHOP, PHONE, text="acme: failed")["message_id"]
    wait_until(lambda: acme.message_get(failed)["status"] == "failed")
    acme.instance_delete(SHOP)

    assert globex.instance_create("sim", SHOP) == SHOP
    online(admin, SHOP)
    assert globex.queue_list(SHOP)["messages"] == []
    status = globex.queue_status(SHOP)
    counts = {k: status[k] for k in ("depth", "in_flight", "sent", "failed", "cancelled")}
    assert counts == {"depth": 0, "in_flight": 0, "sent": 0, "failed": 0, "cancelled": 0}
    assert status["success_rate"] is None
    assert globex.queue_retry(SHOP) == []
    assert globex.queue_retry(SHOP, [failed]) == []
    assert globex.queue_purge(SHOP) == 0
    for mid in (sent, failed):
        assert code_of(globex.message_get, mid) == ("not_found", {"field": "message_id"})
        assert code_of(globex.message_cancel, mid) == ("not_found", {"field": "message_id"})

    # globex's own message is all its instance has, and acme's failed one stays failed
    mine = globex.message_send(SHOP, PHONE, text="globex: mine")["message_id"]
    wait_until(lambda: globex.message_get(mine)["status"] == "sent")
    assert [m["message_id"] for m in globex.queue_list(SHOP)["messages"]] == [mine]
    assert globex.queue_status(SHOP)["sent"] == 1
    assert acme.message_get(failed)["status"] == "failed"
    assert [h["status"] for h in acme.message_get(failed)["history"]][-1] == "failed"
