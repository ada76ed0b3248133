"""A tenant token sees only its own instances and messages: other ids answer not_found."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.control.conftest import TestDaemon, online
from tests.waiting import wait_until
from waz_actors.control.client import Client, ClientError

PHONE = "5511999999999"


def code_of(fn: Callable[..., Any], *a: Any, **kw: Any) -> tuple[str, dict[str, Any]]:
    with pytest.raises(ClientError) as e:
        fn(*a, **kw)
    return e.value.code, e.value.details


@pytest.fixture
def two_tenants(
    admin: Client, tenant_client: Callable[[str], Client]
) -> tuple[Client, Client, str]:
    acme, globex = tenant_client("acme"), tenant_client("globex")
    assert acme.instance_create("sim", "acme-1") == "acme-1"
    assert globex.instance_create("sim", "globex-1") == "globex-1"
    online(admin, "globex-1")
    admin.sim_fault("globex-1", "send_fail", permanent=True)
    mid = globex.message_send("globex-1", PHONE, text="secret")["message_id"]
    wait_until(lambda: globex.message_get(mid)["status"] == "failed")  # settled: nothing moves
    return acme, globex, mid


def snapshot(daemon: TestDaemon, admin: Client) -> Any:
    inst = admin.instance_get("globex-1")
    msgs = daemon.store.list_messages("globex-1", limit=1000)
    return inst["state"], inst["tenant"], [(m.message_id, m.status) for m in msgs]


def test_other_tenants_ids_are_not_found_on_every_command(
    two_tenants: tuple[Client, Client, str], admin: Client, daemon: TestDaemon
) -> None:
    acme, globex, mid = two_tenants
    online(admin, "acme-1")
    before = snapshot(daemon, admin)
    other = "globex-1"
    by_instance = [
        ("instance.get", {}),
        ("instance.start", {}),
        ("instance.stop", {}),
        ("instance.restart", {}),
        ("instance.pair", {}),
        ("instance.logout", {}),
        ("instance.reset", {}),
        ("instance.delete", {}),
        ("queue.status", {}),
        ("queue.list", {}),
        ("queue.retry", {}),
        ("queue.purge", {}),
        ("message.send", {"to": PHONE, "text": "x"}),
    ]
    for cmd, extra in by_instance:
        theirs = code_of(acme.call, cmd, {"instance_id": other, **extra})
        missing = code_of(acme.call, cmd, {"instance_id": "no-such-id", **extra})
        assert theirs == missing == ("not_found", {"field": "instance_id"}), cmd
    for cmd in ("message.get", "message.cancel"):
        theirs = code_of(acme.call, cmd, {"message_id": mid})
        missing = code_of(acme.call, cmd, {"message_id": "3EB0FFFFFFFFFFFFFFFF"})
        assert theirs == missing == ("not_found", {"field": "message_id"}), cmd
    assert snapshot(daemon, admin) == before
    # the owner still sees and controls its own
    assert globex.message_get(mid)["message_id"] == mid
    assert globex.instance_get("globex-1")["tenant"] == "globex"


def test_lists_and_status_are_scoped(two_tenants: tuple[Client, Client, str]) -> None:
    acme, globex, _ = two_tenants
    assert [i["instance_id"] for i in acme.instance_list()] == ["acme-1"]
    assert [i["instance_id"] for i in globex.instance_list()] == ["globex-1"]
    st = acme.daemon_status()
    assert st["instances"] == 1 and st["tenant"] == "acme"
    assert "control" not in st


def test_admin_only_commands_refuse_tenants(two_tenants: tuple[Client, Client, str]) -> None:
    acme, _, _ = two_tenants
    for call in (
        lambda: acme.sim_fault("acme-1", "conflict"),
        acme.sim_stats,
        acme.token_list,
        lambda: acme.token_create("acme"),
        lambda: acme.token_revoke("abcdef12"),
    ):
        assert code_of(call)[0] == "unauthorized"


def test_tenant_cannot_create_for_another_tenant(
    two_tenants: tuple[Client, Client, str], admin: Client
) -> None:
    acme, _, _ = two_tenants
    assert code_of(acme.instance_create, "sim", "x1", tenant="globex") == (
        "bad_request",
        {"field": "tenant"},
    )
    assert acme.instance_create("sim", "x2", tenant="acme") == "x2"
    assert admin.instance_get("x2")["tenant"] == "acme"
    assert code_of(admin.instance_get, "x1")[0] == "not_found"


def test_admin_sees_everything(two_tenants: tuple[Client, Client, str], admin: Client) -> None:
    _, _, mid = two_tenants
    assert {i["instance_id"] for i in admin.instance_list()} == {"acme-1", "globex-1"}
    assert admin.message_get(mid)["status"] in ("queued", "sending", "failed")


def test_bad_tokens_are_unauthorized(daemon: TestDaemon) -> None:
    for token in (None, "", "waz_wrong", "nope", "waz_" + "x" * 200):
        with Client(daemon.cfg.control_endpoint, token) as c:
            code, details = code_of(c.ping)
            assert code == "unauthorized" and details == {"field": "token"}
