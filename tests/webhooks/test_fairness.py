"""One tenant's slow receiver never holds back another's deliveries: a webhook holds a bounded
share of the worker's memory (policy/webhook_lanes.py), so a receiver that is up but never
answers fills its own share, and the others' rows keep being loaded and sent (a real worker
loop, a real SQLite outbox, a real HTTP receiver)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from tests.store.store_helpers import instance
from tests.waiting import wait_until
from tests.webhooks.receiver import Hit, Receiver
from tests.webhooks.test_cluster_claims import messages
from waz_actors.config import WebhooksConfig
from waz_actors.delivery.worker import Deliverer
from waz_actors.policy.webhook_lanes import Lanes
from waz_actors.store import Store
from waz_actors.store.webhook_outbox import Outbox
from waz_actors.store.webhooks import WebhookRecord

CFG = WebhooksConfig(allow_private_targets=True, poll_interval=0.05, timeout=60.0, batch=50)


def test_a_receiver_that_never_answers_does_not_hold_back_another_webhook(
    tmp_path: Path, receiver: Receiver
) -> None:
    release = threading.Event()

    def respond(hit: Hit) -> tuple[int, dict[str, str]]:
        if hit.path == "/slow":
            release.wait(60)  # up, connected, and silent
        return 200, {}

    receiver.respond = respond
    store = Store(tmp_path / "waz.db")
    store.open()
    lanes = Lanes(cap=60, per_webhook=20, floor=5)
    d = Deliverer(Outbox.open(tmp_path / "waz.db"), CFG, 1.0, lanes=lanes)
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await d.run()

    t = threading.Thread(target=asyncio.run, args=(main(),))
    try:
        store.create_instance(instance("i1", "t1"))
        for path in ("/slow", "/fast"):
            rec = WebhookRecord(
                path[1:], "t1", receiver.url(path), ("message.status",), "s" * 20, True, None,
                time.time(),
            )  # fmt: skip
            store.webhooks.create_webhook(rec).result(5)
        t.start()
        wait_until(lambda: loops)
        # far more than the memory holds: without a share per webhook, the slow webhook's
        # rows would fill it and the fast one's would wait in the store
        messages(store, "a", 300)
        wait_until(lambda: len(receiver.events("/fast")) == 300, timeout=30)
        fast = [e["data"]["message_id"] for e in receiver.events("/fast")]
        assert fast == [f"a{i}" for i in range(300)]  # one instance: in order, each once
        assert len(receiver.events("/slow")) == 1  # its one request still hangs
        assert lanes.counts["slow"] <= 20 and lanes.count <= 60
        assert "fast" not in lanes.behind and "slow" in lanes.behind
        # more traffic later flows the same way
        messages(store, "b", 50)
        wait_until(lambda: len(receiver.events("/fast")) == 350, timeout=30)
    finally:
        release.set()
        if loops:
            loops[0].call_soon_threadsafe(d.stop)
            t.join(10)
        d.outbox.close()
        store.close()
