"""The supervisor: spawns instance actors, replaces failed ones, sweeps their health.

pykka has no restart: a failed actor is replaced by a fresh one built from the durable
state. The supervisor only asks downward (children never ask it), so it can wait on a child.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pykka
from loguru import logger

from waz_actors.actors.board import InstanceSnapshot
from waz_actors.actors.instance import InstanceDeps
from waz_actors.actors.instance_actor import InstanceActor
from waz_actors.actors.messages import (
    Boot,
    ChildFailed,
    ClusterFence,
    ClusterStart,
    ClusterStop,
    ClusterWake,
    CreateChild,
    DeleteChild,
    DeleteSession,
    Drain,
    Ping,
    Pong,
    Probe,
    Respawn,
    StopAll,
    Sweep,
    Wedge,
)
from waz_actors.actors.supervisor_cluster import ClusterHandlers
from waz_actors.drivers import sessions
from waz_actors.errors import BadRequest, NotFound, ShuttingDown
from waz_actors.store.records import InstanceRecord
from waz_actors.types import InstanceState, MessageStatus

T = TypeVar("T")


class ClusterSeam(Protocol):
    """What the supervisor tells the cluster node (cluster/node.py) when it is clustered: told,
    never asked (the node only queues the id for its next round)."""

    def created(self, instance_id: str) -> None: ...

    def deleted(self, instance_id: str) -> None: ...


class Children:
    """id -> actor ref, written by the supervisor only, read by the Fleet from any thread."""

    def __init__(self) -> None:
        self._refs: dict[str, pykka.ActorRef[InstanceActor]] = {}
        self._lock = threading.Lock()

    def get(self, instance_id: str) -> pykka.ActorRef[InstanceActor] | None:
        return self._refs.get(instance_id)

    def set(self, instance_id: str, ref: pykka.ActorRef[InstanceActor]) -> None:
        with self._lock:
            self._refs[instance_id] = ref

    def pop(self, instance_id: str) -> pykka.ActorRef[InstanceActor] | None:
        with self._lock:
            return self._refs.pop(instance_id, None)

    def items(self) -> list[tuple[str, pykka.ActorRef[InstanceActor]]]:
        with self._lock:
            return list(self._refs.items())

    def __len__(self) -> int:
        return len(self._refs)


@dataclass
class SweepStatus:
    """Read by the systemd watchdog: a wedged supervisor stops completing sweeps."""

    last_sweep: float = 0.0  # time.monotonic() of the last completed sweep
    sweeps: int = 0
    unresponsive: tuple[str, ...] = ()
    restarts: int = 0
    alarms: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))


class Supervisor:
    def __init__(
        self,
        deps: InstanceDeps,
        children: Children,
        status: SweepStatus,
        cluster: ClusterSeam | None = None,
    ) -> None:
        self.deps = deps
        # Clustered: only instances whose lease this node holds run here (`owned`, told by
        # ClusterStart/ClusterStop); None: this daemon runs every instance (one node).
        self.cluster = cluster
        self.owned: set[str] = set()
        self.children = children
        self.status = status
        self.restarts: dict[str, deque[float]] = {}
        self.ping_seq = 0
        self.pongs: dict[str, int] = {}
        self.me: pykka.ActorRef[SupervisorActor] | None = None
        self._stored: list[InstanceRecord] = []
        # Set by stop_all: from then on nothing is spawned again. A sweep or a failure report
        # queued behind StopAll would otherwise find the stopped children "dead" and replace
        # them, and the replacements would send after the daemon had handed over.
        self.stopping = False
        self.clustered = ClusterHandlers(self)

    def show_stored(self) -> None:
        """Put every stored instance on the board, before any actor exists.

        Runs in the thread that starts the supervisor, so it is done before the control socket
        answers: a command sent while the actors are still being spawned (thousands take
        seconds) finds the instance instead of hearing `not_found`, which a client takes as
        final."""
        self._stored = self.deps.store.list_instances()
        for rec in self._stored:
            self._show(rec)

    def _show(self, rec: InstanceRecord, reason: str | None = None) -> None:
        depth = self.deps.store.pending_count(rec.instance_id)
        snap = InstanceSnapshot.placeholder(rec, depth, reason)
        if reason is None:
            self.deps.board.put_if_absent(snap)  # an actor's own snapshot stays
        else:
            self.deps.board.put(snap)

    def boot(self, me: pykka.ActorRef[SupervisorActor]) -> None:
        self.me = me
        # Clustered, the store is shared: another node's sends are in flight; each instance's
        # are recovered when this node takes its lease (ClusterHandlers.start).
        recovered = self.deps.store.recover_sending() if self.cluster is None else 0
        if recovered:
            logger.info("{} message(s) left sending by the last run are queued again", recovered)
        scale = self.deps.cfg.daemon.time_scale
        since = self.deps.clock.wall() - self.deps.cfg.conflict.window * scale
        conflicts = self.deps.store.all_conflicts_since(since)
        stored, self._stored = self._stored, []
        for rec in stored:
            if self._runs_here(rec.instance_id):
                self._spawn(rec, conflicts=conflicts.get(rec.instance_id, []))
        self._schedule_sweep()

    # ---------------------------------------------------------------- children

    def _spawn(
        self,
        rec: InstanceRecord,
        restart_tripped: str | None = None,
        conflicts: list[float] | None = None,
    ) -> None:
        # Clustered: never an actor for a lease this node does not hold (a ClusterStart read
        # after the fence dropped it, a failure report of a fenced actor).
        if self.stopping or not self.deps.sessions.may_run(rec.instance_id):
            return
        assert self.me is not None
        if rec.driver not in self.deps.drivers:
            why = f"driver {rec.driver!r} is not available; instance not started"
            logger.bind(instance=rec.instance_id).error(why)
            # Still on the board, saying why: its messages are kept (and accepted) until a
            # daemon with that driver starts it.
            self._show(rec, why)
            return
        self._show(rec)
        ref = InstanceActor.start(self.deps, rec, self.me, restart_tripped, conflicts)
        self.children.set(rec.instance_id, ref)
        ref.tell(Boot())  # after set(): see Instance.handle
        self.pongs[rec.instance_id] = self.ping_seq

    def create(self, msg: CreateChild) -> str:
        if self.stopping:
            raise ShuttingDown("the daemon is shutting down; no instance was created")
        if msg.driver not in self.deps.drivers:
            known = ", ".join(sorted(self.deps.drivers))
            raise BadRequest(f"unknown driver {msg.driver!r}; known: {known}", {"field": "driver"})
        rec = InstanceRecord(
            instance_id=msg.instance_id,
            tenant=msg.tenant,
            driver=msg.driver,
            settings=dict(msg.settings),
            desired=msg.desired,
            state=str(InstanceState.STOPPED),
            since=self.deps.clock.wall(),
            jid=None,
            last_code=None,
            last_reason=None,
            created_at=self.deps.clock.wall(),
        )
        self._refuse_old_session(msg.instance_id, msg.driver)
        self.deps.store.create_instance(rec)  # raises Exists
        if self.cluster is not None:
            self.cluster.created(msg.instance_id)  # placed by the lease rounds, maybe elsewhere
            self._show(rec, "waiting for a cluster node to take its lease")
        else:
            self._spawn(rec)
        return msg.instance_id

    def _refuse_old_session(self, instance_id: str, driver: str) -> None:
        """A session left for this id (a deleted instance's, not removed) would log the new
        instance in as the old owner's number: refuse until an operator removes it."""
        if self.deps.store.get_instance(instance_id) is None:  # else the store answers exists
            sessions.refuse_leftover(self.deps.cfg, driver, instance_id)

    def delete(self, instance_id: str) -> list[str]:
        ref = self.children.pop(instance_id)
        rec = self.deps.store.get_instance(instance_id)
        if ref is None and rec is None:
            raise NotFound(f"no instance {instance_id!r}")
        log = logger.bind(instance=instance_id)
        if ref is not None:
            ref.tell(DeleteSession())  # handled before the stop, which queues behind it
            try:
                ref.stop(block=True, timeout=self.deps.cfg.control.ask_timeout)
            except pykka.Timeout:
                log.error("did not stop in time; deleting anyway")
        if rec is not None:
            # After the driver closed: a live session may write its files again.
            try:
                sessions.remove_stored(self.deps.cfg, rec.driver, instance_id)
            except Exception as e:  # a file or a schema (psycopg.Error): the delete goes on
                log.error("could not remove the stored session: {}", e)
        cancelled = self.deps.store.delete_instance(instance_id, reason="instance deleted")
        wall = self.deps.clock.wall()
        tenant = rec.tenant if rec is not None else None
        for mid in cancelled:
            self.deps.bus.publish(
                f"message.{instance_id}.status",
                {
                    "time": wall,
                    "instance_id": instance_id,
                    "message_id": mid,
                    "status": str(MessageStatus.CANCELLED),
                    "reason": "instance deleted",
                    "tenant": tenant,
                },
            )
        self.deps.board.remove(instance_id)
        self.pongs.pop(instance_id, None)
        if self.cluster is not None:
            self.owned.discard(instance_id)
            self.cluster.deleted(instance_id)
        self.deps.bus.publish(
            f"instance.{instance_id}.state",
            {
                "time": wall,
                "instance_id": instance_id,
                "state": "deleted",
                "reason": "deleted",
                "tenant": tenant,  # the board has forgotten it: event streams filter by this
            },
        )
        return cancelled

    def respawn(self, instance_id: str) -> str:
        """Stop the child (its session closes, its queue stays durable), start a fresh one."""
        rec = self.deps.store.get_instance(instance_id)
        if rec is None:
            raise NotFound(f"no instance {instance_id!r}")
        ref = self.children.pop(instance_id)
        if ref is not None:
            try:
                ref.stop(block=True, timeout=self.deps.cfg.control.ask_timeout)
            except pykka.Timeout:
                logger.bind(instance=instance_id).error("did not stop in time; replacing anyway")
        if self._runs_here(instance_id):
            self._spawn(rec)
        return instance_id

    def child_failed(self, msg: ChildFailed) -> None:
        ref = self.children.get(msg.instance_id)
        if ref is None or ref.actor_urn != msg.actor_urn:
            return  # deleted meanwhile, or already replaced
        log = logger.bind(instance=msg.instance_id)
        log.error("instance actor failed: {}", msg.error)
        now = self.deps.clock.now()
        window = self.deps.cfg.daemon.restart_window
        times = self.restarts.setdefault(msg.instance_id, deque())
        while times and now - times[0] > window:
            times.popleft()
        times.append(now)
        self.status.restarts += 1
        rec = self.deps.store.get_instance(msg.instance_id)
        if rec is None:
            self.children.pop(msg.instance_id)
            return
        tripped = None
        if len(times) > self.deps.cfg.daemon.restart_intensity:
            tripped = f"restart intensity exceeded: {len(times)} restarts in {window:.0f} s"
            self._alarm("restart_intensity", msg.instance_id, tripped)
            times.clear()
        self._spawn(rec, restart_tripped=tripped)

    # ---------------------------------------------------------------- cluster

    def _runs_here(self, instance_id: str) -> bool:
        return self.cluster is None or instance_id in self.owned

    # ---------------------------------------------------------------- health

    def _schedule_sweep(self) -> None:
        me = self.me
        assert me is not None
        self.deps.scheduler.call_later(self.deps.cfg.daemon.health_sweep, lambda: me.tell(Sweep()))

    def sweep(self) -> None:
        """Ping every child (tell, never connect); catch the dead and the silent."""
        if self.stopping:
            return
        silent = []
        for instance_id, ref in self.children.items():
            if not ref.is_alive():
                self.child_failed(ChildFailed(instance_id, ref.actor_urn, "found dead by sweep"))
                continue
            if self.pongs.get(instance_id, self.ping_seq) < self.ping_seq:
                silent.append(instance_id)
        if silent:
            self._alarm(
                "unresponsive", None, f"{len(silent)} instance(s) did not answer the last sweep"
            )
        self.status.unresponsive = tuple(silent)
        self.ping_seq += 1
        for _, ref in self.children.items():
            ref.tell(Ping(self.ping_seq))
        self.status.last_sweep = time.monotonic()
        self.status.sweeps += 1
        self._schedule_sweep()

    def pong(self, msg: Pong) -> None:
        self.pongs[msg.instance_id] = msg.seq

    def _alarm(self, kind: str, instance_id: str | None, message: str) -> None:
        body = {"time": self.deps.clock.wall(), "kind": kind, "message": message}
        if instance_id:
            body["instance_id"] = instance_id
        logger.bind(instance=instance_id or "-").warning("alarm {}: {}", kind, message)
        self.status.alarms.append(body)
        self.deps.store.log_event("daemon.alarm", body)
        self.deps.bus.publish("daemon.alarm", body)

    # ---------------------------------------------------------------- shutdown

    def stop_all(self, timeout: float) -> int:
        """Drain every child (in-flight sends settle), then stop them all."""
        self.stopping = True
        waits: list[Future[int]] = []
        for _, ref in self.children.items():
            f: Future[int] = Future()
            ref.tell(Drain(f))
            waits.append(f)
        deadline = time.monotonic() + timeout
        unsettled = 0
        for f in waits:
            try:
                f.result(max(0.0, deadline - time.monotonic()))
            except (FutureTimeout, Exception):
                unsettled += 1
        if unsettled:
            logger.warning(
                "{} instance(s) did not settle in time; their sends stay durable", unsettled
            )
        refs = [ref for _, ref in self.children.items()]
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            try:
                ref.stop(block=True, timeout=max(0.5, deadline - time.monotonic()))
            except pykka.Timeout:
                pass
        return len(refs)


class SupervisorActor(pykka.ThreadingActor):
    def __init__(
        self,
        deps: InstanceDeps,
        children: Children,
        status: SweepStatus,
        cluster: ClusterSeam | None = None,
    ) -> None:
        super().__init__()
        self.sup = Supervisor(deps, children, status, cluster)
        self.sup.show_stored()  # in the starting thread, before start() returns

    def on_start(self) -> None:
        self.sup.boot(self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Pong):
            self.sup.pong(message)
        elif isinstance(message, ChildFailed):
            self.sup.child_failed(message)
        elif isinstance(message, Sweep):
            self.sup.sweep()
        elif isinstance(message, CreateChild):
            _reply(message.reply, self.sup.create, message)
        elif isinstance(message, DeleteChild):
            _reply(message.reply, self.sup.delete, message.instance_id)
        elif isinstance(message, Probe):
            message.reply.set_result(True)
        elif isinstance(message, Wedge):
            logger.warning("supervisor wedged on purpose for {:g} s", message.seconds)
            time.sleep(message.seconds)
        elif isinstance(message, Respawn):
            _reply(message.reply, self.sup.respawn, message.instance_id)
        elif isinstance(message, ClusterStart):
            self.sup.clustered.start(message)
        elif isinstance(message, ClusterFence):
            self.sup.clustered.fenced(message)
        elif isinstance(message, ClusterStop):
            self.sup.clustered.hand_over(message)
        elif isinstance(message, ClusterWake):
            self.sup.clustered.wake(message)
        elif isinstance(message, StopAll):
            _reply(message.reply, self.sup.stop_all, message.timeout)
        else:
            raise TypeError(f"unexpected message {message!r}")


def _reply(fut: Future[T], fn: Callable[..., T], *args: object) -> None:
    try:
        fut.set_result(fn(*args))
    except Exception as e:
        fut.set_exception(e)
