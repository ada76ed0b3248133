"""The cluster behind the daemon's seam: builds the node from [cluster] and turns its hooks into
supervisor messages (tell, never ask). app/runtime.py only calls `start`, `halt`, `hand_over`.

Hand-over order on SIGTERM (Daemon.stop): `halt` (take no more leases) -> the supervisor's
StopAll (every session closes, in-flight sends settle; queues stay in the shared store) ->
`hand_over` (every claim and every lease released, one UPDATE each; the node leaves the node
table). Another node takes the released leases and claims at once, with no expiry wait and no
conflict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka
from loguru import logger

from waz_actors.actors.messages import ClusterFence, ClusterStart, ClusterStop, ClusterWake
from waz_actors.actors.sessions import LiveSessions
from waz_actors.cluster.claims import Claims, ClaimStore
from waz_actors.cluster.forward import Forwarder
from waz_actors.cluster.lease_policy import LeaseTiming, Placement
from waz_actors.cluster.leases import LeaseStore
from waz_actors.cluster.node import ClusterNode
from waz_actors.cluster.status import MAX_LEASES, cluster_status
from waz_actors.config import Config

if TYPE_CHECKING:
    from waz_actors.cluster.wake import WakeListener
    from waz_actors.control.auth import Auth
    from waz_actors.store.api import StoreAPI


class SupervisorHooks:
    """ClusterNode -> supervisor, as tells. Bound after the supervisor starts.

    A fence does not wait for the supervisor: its mailbox may be behind a hand-over or a
    start stuck on the database (the partition). The sessions are closed here, on the node's
    thread, through the daemon's session switches; the supervisor stops the actors after."""

    def __init__(self) -> None:
        self.supervisor: pykka.ActorRef[Any] | None = None
        self.on_stopped: Callable[[str], None] | None = None
        self.sessions: LiveSessions | None = None

    def start(self, instance_id: str, epoch: int) -> None:
        self._tell(ClusterStart(instance_id))

    def stop(self, instance_id: str, reason: str, release: bool) -> None:
        self._tell(ClusterStop(instance_id, reason, self.on_stopped if release else None))

    def fence(self, instance_ids: list[str], reason: str) -> None:
        t0 = time.monotonic()
        closed = self.sessions.trip(instance_ids) if self.sessions is not None else 0
        logger.warning(
            "cluster: fence closed {} session(s) of {} instance(s) in {:.1f} ms ({})",
            closed,
            len(instance_ids),
            (time.monotonic() - t0) * 1000,
            reason,
        )
        self._tell(ClusterFence(tuple(instance_ids), reason))

    def _tell(self, message: object) -> None:
        if self.supervisor is None:
            return
        try:
            self.supervisor.tell(message)
        except pykka.ActorDeadError:
            pass  # the daemon is stopping: its sessions are closed (or closing) anyway


def timing_from(cfg: Config) -> LeaseTiming:
    """[cluster] durations are daemon seconds; leases live on the database's real clock."""
    c, scale = cfg.cluster, cfg.daemon.time_scale
    return LeaseTiming(
        ttl=c.lease_ttl * scale,
        renew_every=c.renew_every * scale,
        margin=c.fence_margin * scale,
        takeover_delay=c.takeover_delay * scale,
    )


class Cluster:
    def __init__(self, cfg: Config, instances: Callable[[], list[str]]) -> None:
        self.cfg = cfg
        self.node_id = cfg.cluster.resolved_node_id()
        self.timing = timing_from(cfg)
        self.hooks = SupervisorHooks()
        rate = cfg.cluster.acquire_rate
        self.node = ClusterNode(
            LeaseStore(cfg.store.url, self.node_id, self.timing.ttl),
            self.timing,
            Placement(rate, max(1, int(rate))),
            self.hooks,
            endpoint=cfg.cluster.endpoint or cfg.control_endpoint,
            instances=instances,
        )
        self.hooks.on_stopped = self.node.stopped
        # Work that runs once in the cluster (campaign feeding, webhook deliveries): claimed
        # per key with the leases' timing, on a connection of its own.
        self.claims = Claims(ClaimStore(cfg.store.url, self.node_id, self.timing.ttl), self.timing)
        self._forwarder: Forwarder | None = None
        self._listener: WakeListener | None = None

    # The supervisor's ClusterSeam: told when instances are created or deleted here.
    def created(self, instance_id: str) -> None:
        self.node.created(instance_id)

    def deleted(self, instance_id: str) -> None:
        self.node.deleted(instance_id)

    def start(self, supervisor: pykka.ActorRef[Any], sessions: LiveSessions | None = None) -> None:
        """`sessions`: the daemon's session switches; a session opens only while this node
        holds its instance's lease, and a fence closes them directly (actors/sessions.py)."""
        if sessions is not None:
            sessions.may_run = lambda iid: self.node.epoch(iid) is not None
            self.hooks.sessions = sessions
        self.hooks.supervisor = supervisor
        self.node.start()  # creates the tables (the claims' too) when no store migration did
        self.claims.start()

    def halt(self) -> None:
        self.node.halt()

    def hand_over(self) -> int:
        if self._listener is not None:
            self._listener.stop()
        if self._forwarder is not None:
            self._forwarder.close()
        self.claims.close()  # the campaigns stopped first: give their claims back at once
        return self.node.hand_over()

    def epoch(self, instance_id: str) -> int | None:
        """The fencing token for this instance's writes (the PostgreSQL store's seam)."""
        return self.node.epoch(instance_id)

    def fence(self, store: StoreAPI) -> None:
        """The PostgreSQL store's seam: every owner write carries this node's lease epoch
        (store/fencing.py) and a refused one closes that session (`ClusterNode.refused`);
        leases are given back only once the closed sessions' writes are committed (a write
        after the release would be refused)."""
        store.fence_writes(self.epoch, self.node.refused)
        ttl = self.timing.ttl
        self.node.before_release = lambda: store.flush(ttl)

    def status(self) -> dict[str, Any]:
        admin = LeaseStore(self.cfg.store.url, "status", self.timing.ttl)
        claims = ClaimStore(self.cfg.store.url, "status", self.timing.ttl)
        try:
            out = cluster_status(admin, self.node, claims.rows(MAX_LEASES + 1))
        finally:
            admin.close()
            claims.close()
        out["this_node"]["claims_held"] = len(self.claims.held())
        out["this_node"]["claims_lost"] = self.claims.lost
        return out

    def listen_for_sends(
        self,
        auth: Auth | None = None,
        on_webhooks: Callable[[str | None], None] | None = None,
    ) -> None:
        """The outbox across nodes: a `message.send` accepted on another node wakes this
        node's instance (store/messages.py wake_owner, payload "<instance> <message>"), which
        reads that row (Reload). With the control plane's `auth`, a token revoked on any node
        is dropped from its cache, which is trusted only while the listener listens. With
        `on_webhooks`, webhook changes on any node (store/webhooks.py tell_nodes)."""
        if auth is not None:
            auth.trusted = self._listening

        def woken(payload: str) -> None:
            iid, _, mid = payload.partition(" ")
            self.hooks._tell(ClusterWake(iid, mid or None))

        self.listen(
            woken,
            lambda: self.hooks._tell(ClusterWake(None)),
            None if auth is None else auth.revoked_elsewhere,
            on_webhooks,
        )

    def _listening(self) -> bool:
        listener = self._listener
        return listener is not None and listener.listening.is_set()

    def listen(
        self,
        on_wake: Callable[[str], None],
        on_resync: Callable[[], None],
        on_token: Callable[[str | None], None] | None = None,
        on_webhooks: Callable[[str | None], None] | None = None,
    ) -> None:
        """Outbox wake-ups for this node (cluster/wake.py): `on_wake(instance_id)` when a send
        for one of its instances committed on any node; `on_resync()` after every (re)connect;
        `on_token(hash)` for a revoked token (None: drop them all). `listen_for_sends` is the
        daemon's use (all must only tell)."""
        from waz_actors.cluster.wake import WakeListener

        self._listener = WakeListener(
            self.cfg.store.url,
            self.node_id,
            on_wake,
            on_resync,
            on_token=on_token,
            on_webhooks=on_webhooks,
        )
        self._listener.start()

    def forwarder(self) -> Forwarder:
        """For the control plane (Dispatcher.forward)."""
        if self._forwarder is None:
            self._forwarder = Forwarder(self.cfg, self.node_id, self.timing.ttl)
        return self._forwarder

    # -- work a campaign's feeder asks of the node running an instance -----------------------

    def take_back(self, instance_id: str, message_id: str) -> str:
        """Cancel a message never handed to the driver, on the node running its instance (its
        actor decides: only it knows what is in flight). The status, or a WazError."""
        result = self._ask_owner(
            instance_id, "cluster.take_back", {"instance_id": instance_id, "message_id": message_id}
        )
        return str(result["status"])

    def check_contacts(
        self, instance_id: str, numbers: tuple[str, ...], timeout: float | None
    ) -> list[Any]:
        args = {"instance_id": instance_id, "numbers": list(numbers)}
        return list(self._ask_owner(instance_id, "contact.check", args)["contacts"])

    def _ask_owner(self, instance_id: str, cmd: str, args: dict[str, Any]) -> Any:
        """One command to the instance's live owner, as the cluster's admin (every node has the
        same admin token file)."""
        from waz_actors.control.auth import read_admin_token
        from waz_actors.errors import Internal, NotFound

        fwd = self.forwarder()
        target = fwd.target(instance_id)
        if target is None:  # no live owner (or this node, not running it yet): later
            raise NotFound(
                f"instance {instance_id} runs on no live node", {"instance_id": instance_id}
            )
        try:
            token = read_admin_token(self.cfg.state_dir)
        except OSError as e:
            raise Internal(f"no admin token to ask node {target.node_id} with: {e}") from None
        return fwd.send(target, cmd, args, token)

    def drain(self, node_id: str, draining: bool = True) -> bool:
        admin = LeaseStore(self.cfg.store.url, "drain", self.timing.ttl)
        try:
            return admin.set_draining(node_id, draining)
        finally:
            admin.close()
