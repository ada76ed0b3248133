"""send, message show|cancel, queue status|list|retry|purge against a real daemon."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.cli.conftest import Cli
from tests.waiting import wait_until
from waz_actors.control.client import Client

TO = "6281234567890"


def test_send_show_and_idempotency(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh()
    mid = run("send", iid, TO, "hello there").stdout.strip()
    assert mid.startswith("3EB0")
    wait_until(lambda: admin.message_get(mid)["status"] == "sent", what="sent")
    doc = json.loads(run("message", "show", mid, "--json").stdout)
    assert doc["status"] == "sent" and doc["text"] == "hello there"
    assert [h["status"] for h in doc["history"]] == ["queued", "sending", "sent"]
    text = run("message", "show", mid).stdout
    assert "history:" in text and "sent" in text

    first = json.loads(run("send", iid, TO, "once", "--idempotency-key", "k1", "--json").stdout)
    again = run("send", iid, TO, "once", "--idempotency-key", "k1", "--json")
    assert json.loads(again.stdout)["message_id"] == first["message_id"]
    plain = run("send", iid, TO, "once", "--idempotency-key", "k1")
    assert plain.stdout.strip() == first["message_id"] and "nothing new" in plain.stderr


def test_send_media_and_ttl(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh(online=False)
    out = run(
        "send", iid, TO, "--media", "https://example.invalid/a.jpg", "--caption", "c",
        "--filename", "a.jpg", "--mime", "image/jpeg", "--ttl", "600", "--json",
    ).stdout  # fmt: skip
    msg = admin.message_get(json.loads(out)["message_id"])
    assert msg["media"] == {
        "url": "https://example.invalid/a.jpg",
        "caption": "c",
        "filename": "a.jpg",
        "mime": "image/jpeg",
    }
    assert msg["expires_at"] is not None and msg["text"] is None
    out = run("send", iid, TO, "--media", "https://example.invalid/v.ogg", "--ptt", "--json")
    assert admin.message_get(json.loads(out.stdout)["message_id"])["media"]["ptt"] is True


def test_send_bad_input(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh(online=False)
    run("send", iid, TO, code=2)  # neither text nor media
    run("send", iid, TO, "x", "--caption", "c", code=2)  # caption without media
    run("send", iid, TO, "x", "--ptt", code=2)
    run("send", iid, TO, "x", "--ttl", "-1", code=2)
    assert "bad_request" in run("send", iid, "not a number", "x", code=1).stderr
    assert "not_found" in run("send", "nosuch", TO, "x", code=1).stderr
    assert admin.queue_status(iid)["depth"] == 0  # nothing was queued


def test_cancel(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh(online=False)  # stopped: the message waits
    mid = run("send", iid, TO, "wait").stdout.strip()
    assert json.loads(run("message", "cancel", mid, "--json").stdout)["status"] == "cancelled"
    assert admin.message_get(mid)["status"] == "cancelled"
    run("message", "show", "3EB0NOSUCHMESSAGE", code=1)


def test_queue_status_list(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh(online=False)
    ids = [run("send", iid, TO, f"m{n}").stdout.strip() for n in range(3)]
    st = json.loads(run("queue", "status", iid, "--json").stdout)
    assert st["depth"] == 3 and st["state"] == "stopped"
    assert any("instance.start" in r for r in st["recommendations"])
    text = run("queue", "status", iid).stdout
    assert "recommendations:" in text and "depth" in text

    page = json.loads(run("queue", "list", iid, "--limit", "2", "--json").stdout)
    assert [m["message_id"] for m in page["messages"]] == ids[:2]
    rest = json.loads(run("queue", "list", iid, "--after", page["next"], "--json").stdout)
    assert [m["message_id"] for m in rest["messages"]] == ids[2:]
    listed = run("queue", "list", iid, "--limit", "2")
    assert "MESSAGE" in listed.stdout and "--after" in listed.stderr
    run("queue", "list", iid, "--limit", "0", code=2)
    run("queue", "list", iid, "--status", "weird", code=2)


def test_purge_asks_first(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh(online=False)
    for n in range(4):
        run("send", iid, TO, f"p{n}")
    no = run("queue", "purge", iid, input="n\n", code=1)
    assert "cancel 4 queued message(s)" in no.stderr and "nothing cancelled" in no.stderr
    assert admin.queue_status(iid)["depth"] == 4
    yes = run("queue", "purge", iid, input="y\n")
    assert "4 message(s) cancelled" in yes.stdout
    assert admin.queue_status(iid)["depth"] == 0
    run("send", iid, TO, "again")
    out = json.loads(run("queue", "purge", iid, "--yes", "--json").stdout)
    assert out == {"instance_id": iid, "cancelled": 1}
    run("queue", "purge", "nosuch", "--yes", code=1)


def test_retry_failed(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh()
    run("sim", "fault", iid, "send_fail", "--param", "count=1", "--param", "permanent=true")
    mid = run("send", iid, TO, "fails once").stdout.strip()
    wait_until(lambda: admin.message_get(mid)["status"] == "failed", what="failed")
    failed = json.loads(run("queue", "list", iid, "--status", "failed", "--json").stdout)
    assert [m["message_id"] for m in failed["messages"]] == [mid]
    out = json.loads(run("queue", "retry", iid, "--json").stdout)
    assert out["retried"] == [mid]
    wait_until(lambda: admin.message_get(mid)["status"] == "sent", what="sent after retry")
    assert "0 message(s) queued again" in run("queue", "retry", iid).stdout
