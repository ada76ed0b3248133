"""A node that loses a webhook's claim (its renewals failed, another node took it) stops at
once: its requests in flight are cancelled and nothing of them is written, so the new holder's
outcomes stand (a real worker loop and claims on the real PostgreSQL, a real receiver)."""

from __future__ import annotations

import threading
import time

from tests.pg import fresh_schema
from tests.store.store_helpers import instance
from tests.waiting import wait_until
from tests.webhooks.receiver import Hit, Receiver
from tests.webhooks.test_cluster_claims import messages, node, workers
from waz_actors.cluster.claims import ClaimStore, webhook_key
from waz_actors.store import Store
from waz_actors.store.webhooks import WebhookRecord


def test_a_lost_claim_cancels_the_requests_in_flight(receiver: Receiver) -> None:
    release = threading.Event()

    def respond(hit: Hit) -> tuple[int, dict[str, str]]:
        release.wait(30)  # up, connected, and silent until the claim moved on
        return 200, {}

    receiver.respond = respond
    with fresh_schema() as url:
        store = Store(url)
        store.open()
        other = ClaimStore(url, "node-b", 30.0)
        try:
            store.create_instance(instance("i1", "t1"))
            rec = WebhookRecord(
                "wh", "t1", receiver.url(), ("message.status",), "s" * 20, True, None, time.time()
            )
            store.webhooks.create_webhook(rec).result(5)
            with node(url, "node-a") as claims:
                messages(store, "a", 1)
                wait_until(lambda: len(receiver.hits) == 1, what="node A's request in flight")
                worker = workers["node-a"]
                assert len(worker.inflight) == 1
                # node A's claim runs out (as if its renewals failed) and node B takes it
                other._all(
                    "UPDATE claims SET expires_at = now() - interval '1 second' WHERE key = %s"
                    " RETURNING key",
                    (webhook_key("wh"),),
                )
                assert other.take(webhook_key("wh")) is not None
                wait_until(lambda: claims.claims.lost == 1, what="node A sees it lost")
                wait_until(lambda: not worker.inflight, what="the request cancelled")
                assert not release.is_set()  # the receiver never answered it
                assert worker.stats["attempts"] == 0 and not worker.attempts
                looks = worker.stats["looks"]
                wait_until(lambda: worker.stats["looks"] >= looks + 3, what="more looks")
                (row,) = store.webhooks.list_deliveries("wh", limit=10)
                assert (row["status"], row["attempts"]) == ("pending", 0)  # node B's to send
                assert len(receiver.hits) == 1  # and node A sent nothing more
        finally:
            release.set()
            other.close()
            store.close()
