"""daemon.metrics (docs/protocol.md): admin-only figures for the gateway's /metrics, through the
Dispatcher and over the socket."""

from __future__ import annotations

from tests.control.conftest import TestDaemon
from tests.control.dispatch_util import PHONE, Core
from tests.waiting import wait_until
from waz_actors.control.client import Client, ClientError


def test_daemon_metrics_through_the_dispatcher(core: Core) -> None:
    acme = core.tenant("acme")
    acme.ok("instance.create", driver="sim", instance_id="m1")
    core.online(acme, "m1")
    mid = acme.ok("message.send", instance_id="m1", to=PHONE, text="hi")["message_id"]
    wait_until(lambda: acme.ok("message.get", message_id=mid)["status"] == "sent")
    m = wait_until(lambda: (x := core.admin.ok("daemon.metrics"))["sends"]["sent"] == 1 and x)
    assert m["instances"] == 1 and m["states"]["online"] == 1
    assert m["connect_attempts"] >= 1 and m["breaker_trips"] == 0 and m["breakers_open"] == 0
    assert set(m["queue"]) == {"queued", "in_flight"} and "control" in m
    assert acme.error("daemon.metrics") == ("unauthorized", {"field": "token"})
    assert core.admin.error("daemon.metrics", x=1) == ("bad_request", {"field": "x"})


def test_daemon_metrics_over_the_socket(daemon: TestDaemon, admin: Client) -> None:
    m = admin.daemon_metrics()
    assert m["instances"] == 0 and m["control"]["received"] >= 1
    tenant = admin.token_create("acme")["token"]
    with Client(daemon.cfg.control_endpoint, tenant) as c:
        try:
            c.daemon_metrics()
        except ClientError as e:
            assert e.code == "unauthorized"
        else:
            raise AssertionError("a tenant read daemon.metrics")
