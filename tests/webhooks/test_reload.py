"""A reload of the outbox (a webhook created, deleted, redelivered, a claim lost, every few
seconds in a cluster) while a request is in flight: the request's outcome, not written yet,
wins over the row read back as pending. Not sent again at once (delivered), and a retry waits
its backoff (a real worker loop, a real SQLite outbox, a real HTTP receiver)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tests.store.store_helpers import instance
from tests.waiting import wait_until
from tests.webhooks.receiver import Hit, Receiver
from tests.webhooks.test_cluster_claims import messages
from waz_actors.config import WebhooksConfig
from waz_actors.delivery.worker import Deliverer
from waz_actors.store import Store
from waz_actors.store.webhook_outbox import Outbox
from waz_actors.store.webhooks import WebhookRecord

# retry_initial: a retried delivery waits a minute, far longer than the test
CFG = WebhooksConfig(
    allow_private_targets=True, poll_interval=0.05, retry_initial=60.0, retry_jitter=0.0
)


@pytest.mark.parametrize(("code", "status"), [(200, "delivered"), (500, "pending")])
def test_an_outcome_settled_during_a_reload_is_not_sent_again(
    tmp_path: Path, receiver: Receiver, code: int, status: str
) -> None:
    answer = threading.Event()
    reloading = threading.Event()

    def respond(hit: Hit) -> tuple[int, dict[str, str]]:
        answer.wait(10)  # held until the worker is inside its reload
        return code, {}

    receiver.respond = respond
    store = Store(tmp_path / "waz.db")
    store.open()
    d: Deliverer

    def may_deliver(webhook_id: str) -> bool:
        # called by the reload's read (off the loop): the request finishes right now, after
        # the lanes were emptied and before the rows read back fill them again
        if reloading.is_set() and not answer.is_set():
            answer.set()
            wait_until(lambda: d.stats["attempts"] == 1, what="the outcome settled")
        return True

    d = Deliverer(Outbox.open(tmp_path / "waz.db"), CFG, 1.0, may_deliver=may_deliver)
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await d.run()

    t = threading.Thread(target=asyncio.run, args=(main(),))
    try:
        store.create_instance(instance("i1", "t1"))
        rec = WebhookRecord(
            "wh", "t1", receiver.url(), ("message.status",), "s" * 20, True, None, time.time()
        )
        store.webhooks.create_webhook(rec).result(5)
        t.start()
        wait_until(lambda: loops)
        messages(store, "a", 1)
        wait_until(lambda: len(receiver.hits) == 1, what="the request in flight")
        reloading.set()
        loops[0].call_soon_threadsafe(lambda: d.wake(changed=True))
        wait_until(lambda: answer.is_set(), what="the reload")

        def written() -> bool:
            (row,) = store.webhooks.list_deliveries("wh", limit=10)
            return row["status"] == status and row["attempts"] == 1

        wait_until(written, what="the outcome written")
        looks = d.stats["looks"]
        wait_until(lambda: d.stats["looks"] >= looks + 3, what="more looks")
        assert not d.busy
        assert len(receiver.hits) == 1 and d.stats["attempts"] == 1
    finally:
        answer.set()
        if loops:
            loops[0].call_soon_threadsafe(d.stop)
            t.join(10)
        d.outbox.close()
        store.close()
