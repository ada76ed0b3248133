"""Webhook changes across a cluster's daemons (review findings 2 and 6): a change commits with
a `waz_webhooks` notification (store/webhooks.py tell_nodes); every node's listener
(cluster/wake.py) marks its tap stale and wakes its delivery worker, so another node writes a
new webhook's events at once (not after its timed reload) and stops sending to a deleted or
disabled one. Real PostgreSQL, two stores on one schema, a real listener."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import psycopg
import pytest

from tests.store.store_helpers import instance, message
from tests.waiting import wait_until
from waz_actors.cluster.keys import webhook_key
from waz_actors.cluster.wake import WakeListener
from waz_actors.store import Store
from waz_actors.store.webhooks import WebhookRecord


def hook(store: Store, wid: str) -> None:
    rec = WebhookRecord(wid, "t1", "http://x.test/", ("*",), "s" * 20, True, None, time.time())
    store.webhooks.create_webhook(rec).result(5)


def events(store: Store) -> int:
    with store._db.read() as conn:  # the test looks at the rows themselves
        return int(conn.execute("SELECT count(*) FROM webhook_events").fetchone()[0])


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_webhook_change_on_one_node_reaches_the_other_at_once(
    make_store: Callable[..., Store], target: str
) -> None:
    a, b = make_store(), make_store()
    b.create_instance(instance("i1"))
    b.webhooks.tap.reload_every = None  # only a notification makes b reload
    b.enqueue(message("i1"), max_queue=100).result(5)  # b's tap is loaded: no webhooks
    assert events(b) == 0
    heard: list[str | None] = []
    woken: list[int] = []
    b.webhooks.on_change = lambda: woken.append(1)  # the delivery worker's wake-up ("c")

    def on_webhooks(wid: str | None) -> None:
        heard.append(wid)
        b.webhooks.changed_elsewhere(wid)

    name = f"wz_listener_{uuid.uuid4().hex[:12]}"  # to cut this listener's connection only
    joiner = "&" if "?" in target else "?"
    url = f"{target}{joiner}application_name={name}"
    listener = WakeListener(url, "node-b", lambda _: None, on_webhooks=on_webhooks)
    listener.start()
    try:
        wait_until(listener.listening.is_set, what="listening")
        assert heard == []  # the first connect: the tap and the worker loaded at start
        hook(a, "wh1")
        wait_until(lambda: "wh1" in heard, what=f"the creation heard, got {heard}")
        wait_until(lambda: woken == [1], what="the delivery worker told to reload its lanes")
        b.enqueue(message("i1"), max_queue=100).result(5)
        assert events(b) == 1, "b wrote no event for a webhook made on a"
        # Disabled on a: b's worker is told, and b's tap writes nothing for it any more.
        n = len(heard)
        a.webhooks.set_webhook_enabled("wh1", False, "test").result(5)
        wait_until(lambda: len(heard) > n, what="the disabling heard")
        b.enqueue(message("i1"), max_queue=100).result(5)
        assert events(b) == 1
        # Re-enabled by a redeliver on a: b writes its events again at once.
        n = len(heard)
        a.webhooks.redeliver("wh1", None).result(5)
        wait_until(lambda: len(heard) > n, what="the redeliver heard")
        b.enqueue(message("i1"), max_queue=100).result(5)
        assert events(b) == 2
        # The listener's connection cut: changes may be missed, so b reloads at once, and
        # again once it listens anew.
        heard.clear()
        with psycopg.connect(target, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            )
        wait_until(lambda: heard == [None, None], timeout=10, what=f"reloads, got {heard}")
        wait_until(listener.listening.is_set, what="listening again")
    finally:
        listener.stop()


@pytest.mark.parametrize("backend", ["postgres"])
def test_a_deleted_webhook_loses_its_claim_and_every_node_hears_of_it(
    make_store: Callable[..., Store], target: str
) -> None:
    from waz_actors.cluster.claims import ClaimStore

    s = make_store()
    hook(s, "wh1")
    hook(s, "wh2")
    claims = ClaimStore(target, "node-b", 30)
    try:
        assert claims.take(webhook_key("wh1")) == 1 and claims.take(webhook_key("wh2")) == 1
        heard: list[str | None] = []
        listener = WakeListener(target, "node-b", lambda _: None, on_webhooks=heard.append)
        listener.start()
        try:
            wait_until(listener.listening.is_set, what="listening")
            assert s.webhooks.delete_webhook("wh1").result(5) is True
            wait_until(lambda: "wh1" in heard, what=f"the deletion heard, got {heard}")
        finally:
            listener.stop()
        with psycopg.connect(target) as conn:
            keys = [r[0] for r in conn.execute("SELECT key FROM claims ORDER BY key")]
        assert keys == [webhook_key("wh2")]  # the other webhook's claim is untouched
        # The holder's next renew finds the deleted one's claim lost.
        held = {webhook_key("wh1"): 1, webhook_key("wh2"): 1}
        assert claims.renew(held) == {webhook_key("wh2")}
    finally:
        claims.close()


def test_on_sqlite_a_webhook_change_notifies_nobody(store: Store) -> None:
    hook(store, "wh1")
    assert store.webhooks.delete_webhook("wh1").result(5) is True
    assert store.webhooks.delete_webhook("wh1").result(5) is False
