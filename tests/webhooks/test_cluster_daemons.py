"""End to end on the real PostgreSQL: two daemons in a cluster (the networked simulator, real
delivery worker processes), webhooks on a real HTTP receiver, sends through both nodes: every
event is delivered, each by one node only, and (no failover here) exactly once."""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.test_daemon_cluster import N, cluster_config, running
from tests.core.daemon_util import FAST, send
from tests.pg import fresh_schema
from tests.waiting import wait_until
from tests.webhooks.receiver import Receiver
from waz_actors.app.runtime import Daemon
from waz_actors.clock import RealClock, Scheduler
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.store import Store
from waz_actors.store.webhooks import WebhookRecord

HOOKS = ("wh_a", "wh_b", "wh_c", "wh_d")


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_schema() as url:
        yield url


@pytest.fixture
def sim() -> Iterator[SimNetwork]:
    clock = RealClock(FAST)
    sched = Scheduler(clock)
    sched.start()
    yield SimNetwork(sched, clock, connect_latency=0.5, send_latency=0.2, rand=random.Random(7))
    sched.stop()


def hooked(tmp: Path, url: str, node: str, sim: SimNetwork) -> Daemon:
    cfg = cluster_config(tmp, url, node)
    hooks = dataclasses.replace(cfg.webhooks, allow_private_targets=True, poll_interval=0.05)
    return Daemon(dataclasses.replace(cfg, webhooks=hooks), with_control=False, sim=sim)


def test_two_daemons_deliver_every_event_once(
    tmp_path: Path, pg_url: str, sim: SimNetwork, receiver: Receiver
) -> None:
    store = Store(pg_url)  # the webhooks exist before the daemons: both workers start with them
    store.open()
    for wid in HOOKS:
        rec = WebhookRecord(
            wid, "t1", receiver.url(f"/{wid}"), ("message.status",), "s" * 20, True, None,
            time.time(),
        )  # fmt: skip
        store.webhooks.create_webhook(rec).result(5)
    store.close()
    a, b = hooked(tmp_path, pg_url, "a", sim), hooked(tmp_path, pg_url, "b", sim)
    a.start()
    b.start()
    try:
        wait_until(lambda: len(running(a)) + len(running(b)) == N, timeout=30, what="placed")
        wait_until(
            lambda: all(
                d.board.get(i) is not None and d.board.get(i).state == "online"  # type: ignore[union-attr]
                for d in (a, b)
                for i in running(d)
            ),
            timeout=30,
            what="online",
        )
        ids = []
        for d in (a, b):  # through both nodes, to each one's own instances
            assert running(d), "each node runs some instances"
            for k, iid in enumerate(sorted(running(d)) * 5):
                ids.append(send(d, iid, f"{d.cfg.cluster.node_id}{k}").message_id)
        want = {(m, s) for m in ids for s in ("queued", "sending", "sent")}

        def seen(wid: str) -> set[tuple[str, str]]:
            return {
                (e["data"]["message_id"], e["data"]["status"]) for e in receiver.events(f"/{wid}")
            }

        for wid in HOOKS:
            wait_until(lambda w=wid: seen(w) >= want, timeout=60, what=f"every event at {wid}")  # type: ignore[misc]

        def written() -> set[str]:  # every event the daemons wrote (an instance moving
            # between the nodes may send a message twice: queued, sending again; new events)
            with a.store._db.read() as conn:
                return {str(r[0]) for r in conn.execute("SELECT event_id FROM webhook_events")}

        def received(wid: str) -> set[str]:
            return {h.headers["x-waz-event-id"] for h in receiver.of(f"/{wid}")}

        wait_until(
            lambda: all(received(w) == written() for w in HOOKS), timeout=60, what="all written"
        )
        assert a.delivery is not None and b.delivery is not None
        assert a.delivery.pid is not None and b.delivery.pid is not None  # both workers ran
        for wid in HOOKS:
            hits = receiver.of(f"/{wid}")
            counts = Counter(h.headers["x-waz-event-id"] for h in hits)
            assert max(counts.values()) == 1, [e for e, n in counts.items() if n > 1]
            assert all(h.signed_by("s" * 20) for h in hits)
    finally:
        a.stop()
        b.stop()
