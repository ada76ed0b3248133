"""`waz-actors webhook ...` against a real daemon over its socket, with a real receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, CliDaemon, start_daemon
from tests.waiting import wait_until
from tests.webhooks.receiver import Receiver


@pytest.fixture(scope="module")
def daemon(short_dir: Path) -> Iterator[CliDaemon]:
    d = start_daemon(short_dir / "h", webhooks={"allow_private_targets": True})
    yield d
    d.stop(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_webhook_commands(run: Cli, receiver: Receiver) -> None:
    made = json.loads(
        run(
            "webhook", "create", receiver.url(), "--event", "message.*", "--tenant", "t1", "--json"
        ).stdout
    )
    wid, secret = made["webhook_id"], made["secret"]
    assert made["events"] == ["message.*"] and made["tenant"] == "t1"
    plain = run("webhook", "create", receiver.url("/b"), "--secret", "x" * 20).stdout
    assert "secret: " + "x" * 20 in plain
    listed = run("webhook", "list").stdout
    assert wid in listed and "message.*" in listed and "enabled" in listed
    assert "deliveries none" in run("webhook", "show", wid).stdout
    ping = json.loads(run("webhook", "test", wid, "--json").stdout)
    # the delivery worker starts with the daemon's first webhook: its start-up comes first
    wait_until(lambda: len(receiver.hits) == 1, timeout=20)
    assert receiver.hits[0].signed_by(secret)
    wait_until(lambda: "delivered" in run("webhook", "deliveries", wid).stdout)
    out = run("webhook", "deliveries", wid, "--status", "delivered").stdout
    assert ping["event_id"][:24] in out and "200" in out  # a long id may be shortened
    assert "1 deliveries queued again" in run("webhook", "redeliver", wid, ping["event_id"]).stdout
    wait_until(lambda: len(receiver.hits) == 2)
    assert "deleted" in run("webhook", "delete", wid).stdout
    err = run("webhook", "show", wid, code=1).stderr
    assert "not_found" in err or "no webhook" in err
