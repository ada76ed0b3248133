"""instance.create checks `settings` against what the driver declares (issue 11 item 8): an
unknown or mistyped key is `bad_request` naming it, the whatsmeow `proxy` is the admin's
alone, and nothing is stored for a refused request (invariant 7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.control.conftest import TestDaemon
from waz_actors.config import KNOWN_DRIVERS
from waz_actors.control.client import Client, ClientError
from waz_actors.drivers.settings import DRIVER_SETTINGS, check_settings
from waz_actors.errors import BadRequest, Unauthorized

PROXY = "socks5://127.0.0.1:1080"


def err(fn: Callable[..., Any], *a: Any, **kw: Any) -> ClientError:
    with pytest.raises(ClientError) as e:
        fn(*a, **kw)
    return e.value


def test_unknown_or_mistyped_settings_are_refused_before_anything_is_stored(
    admin: Client, daemon: TestDaemon
) -> None:
    e = err(admin.instance_create, "whatsmeow", "w1", settings={"endpoint": PROXY})  # a typo
    assert e.code == "bad_request" and e.details["field"] == "settings.endpoint"
    assert "proxy" in e.message  # the known keys are named
    e = err(admin.instance_create, "whatsmeow", "w1", settings={"proxy": 1080})
    assert e.code == "bad_request" and e.details["field"] == "settings.proxy"
    e = err(admin.instance_create, "whatsmeow", "w1", settings={"proxy": "10.0.0.1:1080"})
    assert e.code == "bad_request" and e.details["field"] == "settings.proxy"
    e = err(admin.instance_create, "sim", "s1", settings={"proxy": PROXY})  # sim takes none
    assert e.code == "bad_request" and e.details["field"] == "settings.proxy"
    assert daemon.store.get_instance("w1") is None and daemon.store.get_instance("s1") is None
    assert admin.instance_list() == []

    assert admin.instance_create("whatsmeow", "w1", settings={"proxy": PROXY}) == "w1"
    stored = daemon.store.get_instance("w1")
    assert stored is not None and stored.settings == {"proxy": PROXY}
    assert admin.instance_create("sim", "s1", settings={}) == "s1"


def test_a_tenant_token_cannot_set_the_proxy(
    daemon: TestDaemon, tenant_client: Callable[[str], Client]
) -> None:
    """A proxy makes the daemon dial the address given: a tenant could reach internal hosts."""
    acme = tenant_client("acme")
    e = err(acme.instance_create, "whatsmeow", "a1", settings={"proxy": "http://169.254.169.254"})
    assert e.code == "unauthorized" and e.details["field"] == "settings.proxy"
    e = err(acme.instance_create, "whatsmeow", "a1", settings={"proxy": 1})  # no hint either
    assert e.code == "unauthorized" and e.details["field"] == "settings.proxy"
    assert daemon.store.get_instance("a1") is None
    assert acme.instance_create("whatsmeow", "a1") == "a1"  # without it, as any tenant may


def test_every_driver_declares_its_settings() -> None:
    assert set(DRIVER_SETTINGS) == set(KNOWN_DRIVERS)
    check_settings("whatsmeow", {"proxy": "socks5h://proxy.internal:1080"}, admin=True)
    check_settings("whatsmeow", {"proxy": "https://proxy.example:3128"}, admin=True)
    check_settings("sim", {}, admin=False)
    with pytest.raises(BadRequest, match=r"settings\.proxy: expected str, got bool"):
        check_settings("whatsmeow", {"proxy": True}, admin=True)
    with pytest.raises(BadRequest, match=r"settings\.proxy: expected a proxy URL"):
        check_settings("whatsmeow", {"proxy": "socks5://a b"}, admin=True)
    with pytest.raises(Unauthorized):
        check_settings("whatsmeow", {"proxy": PROXY}, admin=False)
