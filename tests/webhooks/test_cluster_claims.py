"""The cluster on the real PostgreSQL: two delivery workers (two nodes) over one outbox never
both deliver a webhook's events; each webhook goes out from the node holding `webhook:<id>`
(cluster/claims.py), and when that node stops, the other takes its webhooks over."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from tests.cluster.node_util import FAST
from tests.pg import fresh_schema
from tests.store.store_helpers import instance
from tests.waiting import wait_until
from tests.webhooks.receiver import Receiver
from waz_actors.config import WebhooksConfig
from waz_actors.delivery.claims import WebhookClaims
from waz_actors.delivery.worker import Deliverer
from waz_actors.net.webhook_http import Answer
from waz_actors.policy.webhook_lanes import Due
from waz_actors.store import Store
from waz_actors.store.records import MessageRecord
from waz_actors.store.webhook_outbox import Outbox
from waz_actors.store.webhooks import WebhookRecord

CFG = WebhooksConfig(allow_private_targets=True, poll_interval=0.05)
settled: dict[str, set[str]] = defaultdict(set)  # webhook_id -> the nodes that sent to it


class Node(Deliverer):
    node = ""

    def _settle(self, d: Due, answer: Answer) -> None:
        settled[d.webhook_id].add(self.node)
        super()._settle(d, answer)


workers: dict[str, Node] = {}  # node_id -> its worker, while node() runs


@contextmanager
def node(url: str, node_id: str) -> Iterator[WebhookClaims]:
    claims = WebhookClaims.open(url, node_id, FAST)
    claims.retry_every = 0.2
    d = Node(
        Outbox.open(url),
        CFG,
        1.0,
        may_deliver=claims.may_deliver,
        holds=claims.holds,
        retry_claims=claims.retry,
        fence=claims.fence,
    )
    d.node = node_id
    workers[node_id] = d
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        claims.on_lost(lambda webhook_id: d.lost_threadsafe(loop, webhook_id))
        claims.on_gained = lambda: d.wake_threadsafe(loop)
        await d.run()

    t = threading.Thread(target=asyncio.run, args=(main(),))
    t.start()
    try:
        yield claims
    finally:
        wait_until(lambda: loops)
        loops[0].call_soon_threadsafe(d.stop)
        t.join(10)
        claims.close()  # given back: the other node may take them at once
        d.outbox.close()


def messages(store: Store, prefix: str, n: int) -> None:
    for i in range(n):
        now = time.time()
        rec = MessageRecord(
            message_id=f"{prefix}{i}", instance_id="i1", tenant="t1", to="5511999999999",
            text="x", media=None, status="queued", attempts=0, last_error=None, wa_id=None,
            idempotency_key=None, created_at=now, updated_at=now, expires_at=None,
        )  # fmt: skip
        store.enqueue(rec, max_queue=1000).result(5)


def test_two_workers_never_both_deliver_a_webhook(receiver: Receiver) -> None:
    settled.clear()
    with fresh_schema() as url:
        store = Store(url)
        store.open()
        try:
            store.create_instance(instance("i1", "t1"))
            hooks = [f"wh_{k}" for k in range(6)]
            for wid in hooks:
                rec = WebhookRecord(
                    wid, "t1", receiver.url(f"/{wid}"), ("message.status",), "s" * 20, True,
                    None, time.time(),
                )  # fmt: skip
                store.webhooks.create_webhook(rec).result(5)
            messages(store, "a", 10)
            with node(url, "n1") as n1:
                with node(url, "n2") as n2:
                    for wid in hooks:
                        wait_until(lambda w=wid: len(receiver.events(f"/{w}")) >= 10, 20)  # type: ignore[misc]
                    assert all(len(nodes) == 1 for nodes in settled.values()), settled
                    # each node holds the claims of the webhooks it sent to, and only those
                    for wid in hooks:
                        (who,) = settled[wid]
                        mine, other = (n1, n2) if who == "n1" else (n2, n1)
                        assert mine.holds(wid) and not other.holds(wid)
                    with_n2 = {w for w in hooks if settled[w] == {"n2"}}
                # n2 stopped (its claims given back): n1 takes its webhooks over
                settled.clear()
                messages(store, "b", 5)
                for wid in hooks:
                    wait_until(
                        lambda w=wid: len(receiver.events(f"/{w}")) >= 15,  # type: ignore[misc]
                        timeout=20,
                        what=lambda: f"{dict(settled)}, n1 holds {sorted(n1.claims.held())}",
                    )
                assert all(nodes == {"n1"} for nodes in settled.values()), settled
                assert all(n1.holds(w) for w in with_n2)
            # at least once, and here (no crash) once: each event id once per webhook
            for wid in hooks:
                ids = [e["id"] for e in receiver.events(f"/{wid}")]
                assert len(ids) == len(set(ids)) == 15
        finally:
            store.close()
