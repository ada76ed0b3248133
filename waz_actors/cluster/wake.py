"""The outbox across nodes: `message.send` (or a campaign's feeder) on any node commits to
PostgreSQL and wakes the instance's owner, which reads its queued rows.

- The waking side is the store's (store/messages.py `wake_owner`): in the accepting
  transaction, `pg_notify` on the owner's channel (`waz_node_<node_id>`). PostgreSQL delivers a
  notification only when (and if) that transaction commits: the owner is never woken for a row
  it cannot read yet.
- `WakeListener`: the owner's thread LISTENing on its channel; each payload is an instance id.
  A notification can be missed (the listener was reconnecting): after every (re)connect it
  calls `on_resync`, so the owner scans its queues once; rows are durable, a wake-up is only
  a hint.
- The same listener hears token revocations (store/tokens.py, channel `waz_tokens`) when given
  `on_token`: `on_token(hash)` per revocation committed on any node, `on_token(None)` when it
  (re)connects and when it loses its connection (a revocation may have been missed), so the
  node's token cache (control/auth.py) is dropped whole and not trusted until listening again.
- And webhook changes (store/webhooks.py, channel `waz_webhooks`) when given `on_webhooks`:
  `on_webhooks(webhook_id)` per change committed on any node, `on_webhooks(None)` when it
  loses its connection and when it listens again after that (a change may have been missed):
  the node's tap reloads the webhooks and its delivery worker its lanes. Not on the first
  connect: both loaded them when the daemon started, and their timed reloads cover a change
  made before this node listened.

Nothing here decides who sends a row: a row is sent only after its `queued -> sending` write
passed the fence with the current lease epoch (`waz_fence_all`, store/fencing.py; docs/design.md,
Cluster, "Fencing").
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from loguru import logger
from psycopg import sql

from waz_actors.cluster.leases import connect
from waz_actors.store.tokens import TOKENS_CHANNEL
from waz_actors.store.webhooks import WEBHOOKS_CHANNEL

CHANNEL_PREFIX = "waz_node_"


def channel(node_id: str) -> str:
    return CHANNEL_PREFIX + node_id


class WakeListener:
    """LISTEN on this node's channel; `on_wake(instance_id)` per notification, `on_resync()`
    after every (re)connect; with `on_token`, token revocations too (see the module's
    docstring). Runs on its own thread; callbacks must only tell (quick)."""

    def __init__(
        self,
        url: str,
        node_id: str,
        on_wake: Callable[[str], None],
        on_resync: Callable[[], None] = lambda: None,
        *,
        retry: float = 1.0,
        on_token: Callable[[str | None], None] | None = None,
        on_webhooks: Callable[[str | None], None] | None = None,
    ) -> None:
        self.url = url
        self.channel = channel(node_id)
        self.on_wake = on_wake
        self.on_resync = on_resync
        self.on_token = on_token
        self.on_webhooks = on_webhooks
        self.retry = retry
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-wake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.retry + 2)

    def _run(self) -> None:
        channels = [self.channel]
        if self.on_token is not None:
            channels.append(TOKENS_CHANNEL)
        if self.on_webhooks is not None:
            channels.append(WEBHOOKS_CHANNEL)
        missed = False  # a connection was lost: webhook changes may have been missed
        while not self._stop.is_set():
            try:
                with connect(self.url) as conn:
                    for name in channels:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                    # Listening from here on: whatever was revoked before is dropped now.
                    self.listening.set()
                    self._tokens(None)
                    if missed:
                        self._webhooks(None)
                    self.on_resync()
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            if n.channel == TOKENS_CHANNEL:
                                self._tokens(n.payload)
                            elif n.channel == WEBHOOKS_CHANNEL:
                                self._webhooks(n.payload)
                            else:
                                self.on_wake(n.payload)
            except Exception as e:
                self.listening.clear()
                self._tokens(None)
                self._webhooks(None)
                missed = True
                logger.warning("cluster: wake listener reconnecting: {}", e)
                self._stop.wait(self.retry)
        self.listening.clear()

    def _tokens(self, token_hash: str | None) -> None:
        if self.on_token is not None:
            self.on_token(token_hash)

    def _webhooks(self, webhook_id: str | None) -> None:
        if self.on_webhooks is not None:
            self.on_webhooks(webhook_id)
