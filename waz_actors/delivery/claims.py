"""The cluster's seam in the delivery worker: a webhook's deliveries go out from one node only.

Several daemons on one PostgreSQL each run a worker over the shared outbox. Each webhook is a
claim (cluster/claims.py, key `webhook:<id>`): the worker loads and sends the deliveries of the
webhooks whose claim its node holds, tries to take the others now and then (a node that died
lets its claims expire, and another takes them over), and drops a webhook's lanes and cancels its
requests in flight as soon as its claim is lost or fenced. Each outcome is written fenced by the
epoch it was made under (`fence`): a node that lost the claim meanwhile writes nothing of it.
Per-webhook order then holds cluster-wide too, and no two nodes send one delivery at once. The
fan-out needs no claim: it is idempotent (store/webhook_outbox.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from waz_actors.cluster.claims import Claims, ClaimStore, webhook_key
from waz_actors.cluster.keys import WEBHOOK
from waz_actors.cluster.lease_policy import LeaseTiming

RETRY_EVERY = 5.0  # real seconds before asking again for a webhook another node holds


class WebhookClaims:
    def __init__(self, claims: Claims, clock: Callable[[], float] = time.monotonic) -> None:
        self.claims = claims
        self.clock = clock
        self.retry_every = RETRY_EVERY
        self._refused: dict[str, float] = {}  # webhook_id -> when to ask again
        # A webhook refused before is ours now (its holder died): the worker reads the outbox
        # again from the start, for the rows it stepped over while another node had them.
        self.on_gained: Callable[[], None] = lambda: None

    @classmethod
    def open(
        cls, url: str, node_id: str, timing: LeaseTiming, *, take_back: bool = False
    ) -> WebhookClaims:
        """`take_back`: this node's worker before this one is known dead (the daemon waited
        for it): its webhooks are this worker's at once, not after their claims expire."""
        claims = Claims(ClaimStore(url, node_id, timing.ttl), timing)
        if take_back:
            claims.take_back(WEBHOOK)
        claims.start()
        return cls(claims)

    def may_deliver(self, webhook_id: str) -> bool:
        """Ours, or taken now (a database round trip: called off the event loop)."""
        key = webhook_key(webhook_id)
        if self.claims.holds(key):
            return True
        retry = self._refused.get(webhook_id)
        if retry is not None and self.clock() < retry:
            return False
        if self.claims.try_claim(key):
            if self._refused.pop(webhook_id, None) is not None:
                self.on_gained()
            return True
        self._refused[webhook_id] = self.clock() + self.retry_every
        return False

    def retry(self) -> None:
        """Ask again, when due, for the webhooks refused before (their holder may have let go or
        died): the rows the worker stepped over are read again once one is ours."""
        now = self.clock()
        for webhook_id, at in list(self._refused.items()):
            if now >= at:
                self.may_deliver(webhook_id)

    def holds(self, webhook_id: str) -> bool:
        """Still ours (memory only): asked before each request."""
        return self.claims.holds(webhook_key(webhook_id))

    def fence(self, webhook_id: str) -> tuple[str, int] | None:
        """(claim key, epoch) to fence a write with (store/webhook_outbox.py Write.fences);
        None: not ours now (memory only)."""
        key = webhook_key(webhook_id)
        epoch = self.claims.epoch(key)
        return None if epoch is None else (key, epoch)

    def on_lost(self, fn: Callable[[str], None]) -> None:
        self.claims.watch(WEBHOOK, lambda key: fn(key.split(":", 1)[1]))

    def close(self) -> None:
        self.claims.close()


__all__ = ["RETRY_EVERY", "WebhookClaims"]
