"""A worker's write is fenced per webhook by the claim epoch it worked under (a cluster on
PostgreSQL): the part of a webhook whose claim went to another node is skipped, alone; the
other webhooks' outcomes and deaths in the same write are written."""

from __future__ import annotations

import time

import pytest

from tests.store.test_store_webhooks import fan_out, hook, message
from waz_actors.cluster.claims import ClaimStore, webhook_key
from waz_actors.store import Store
from waz_actors.store.webhook_outbox import Attempt, Outbox, Write


def test_a_webhook_whose_claim_moved_on_is_skipped_alone(store: Store) -> None:
    if store.url is None:
        pytest.skip("claims live in PostgreSQL (a cluster); SQLite has one daemon")
    lost, kept = hook(store, "t1"), hook(store, "t1")
    message(store, "m1")
    message(store, "m2")
    outbox = Outbox.open(store.url)
    a = ClaimStore(store.url, "node-a", 30.0)
    b = ClaimStore(store.url, "node-b", 30.0)
    try:
        assert fan_out(outbox) == 2
        rows = outbox.load_pending(0, 10)
        mine = {w: [d.seq for d in rows if d.webhook_id == w] for w in (lost, kept)}
        assert len(mine[lost]) == len(mine[kept]) == 2
        epochs = {w: a.take(webhook_key(w)) for w in (lost, kept)}
        # node A stops renewing `lost`: it expires and node B takes it
        a._all(
            "UPDATE claims SET expires_at = now() - interval '1 second' WHERE key = %s"
            " RETURNING key",
            (webhook_key(lost),),
        )
        assert b.take(webhook_key(lost)) == (epochs[lost] or 0) + 1
        now = time.time()
        fences = {seq: (webhook_key(w), epochs[w] or 0) for w, seqs in mine.items() for seq in seqs}
        first = [Attempt(mine[w][0], "delivered", None, 200, None, b"ok", now) for w in mine]
        step = outbox.write(Write(first, [mine[w][1] for w in mine], None, fences))
        assert step.disabled == []
        assert store.webhooks.delivery_counts(lost) == {"pending": 2}  # node B's now
        assert store.webhooks.delivery_counts(kept) == {"delivered": 1, "dead": 1}
        # node B's own write, at its epoch, goes through
        mine_b = {seq: (k, e + 1) for seq, (k, e) in fences.items() if seq in mine[lost]}
        last = [Attempt(mine[lost][0], "delivered", None, 200, None, b"ok", now)]
        outbox.write(Write(last, [], None, mine_b))
        assert store.webhooks.delivery_counts(lost) == {"delivered": 1, "pending": 1}
        # an unknown claim (never taken) is refused too
        ghost = {mine[lost][1]: ("webhook:nobody", 1)}
        outbox.write(Write([], [mine[lost][1]], None, ghost))
        assert store.webhooks.delivery_counts(lost) == {"delivered": 1, "pending": 1}
    finally:
        a.close()
        b.close()
        outbox.close()
