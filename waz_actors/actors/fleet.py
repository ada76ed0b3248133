"""The Fleet: the thread-safe façade the control plane uses over the supervisor and the board.

Reads come from the status board (no actor). Commands go to the instance's actor as a tell
carrying a Future, and the caller waits at most `timeout`: a stuck actor costs its caller a
`busy` answer, never the socket loop or other instances (no head-of-line blocking).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, TypeVar

import pykka

from waz_actors.actors.board import InstanceSnapshot, StatusBoard
from waz_actors.actors.instance_actor import InstanceActor
from waz_actors.actors.messages import (
    Cancel,
    Crash,
    CreateChild,
    DeleteChild,
    InstanceCommand,
    Logout,
    Pair,
    Probe,
    Purge,
    Query,
    Reset,
    Respawn,
    Restart,
    Retry,
    Start,
    Stop,
    Submit,
    Wedge,
)
from waz_actors.actors.supervisor import Children, SupervisorActor, SweepStatus
from waz_actors.clock import Clock
from waz_actors.config import Config
from waz_actors.drivers.base import CheckContacts, DriverRequest
from waz_actors.errors import BadRequest, Busy, NotFound
from waz_actors.store import StoreAPI
from waz_actors.store.records import MessageRecord
from waz_actors.types import InstanceState, new_instance_id

if TYPE_CHECKING:
    from waz_actors.campaign.actor import Manager
    from waz_actors.cluster.runtime import Cluster
    from waz_actors.drivers.sim import SimNetworkLike

T = TypeVar("T")


class Fleet:
    def __init__(
        self,
        cfg: Config,
        clock: Clock,
        store: StoreAPI,
        board: StatusBoard,
        children: Children,
        supervisor: pykka.ActorRef[SupervisorActor],
        sweep: SweepStatus,
        sim: SimNetworkLike | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.store = store
        self.board = board
        self.children = children
        self.supervisor = supervisor
        self.sweep = sweep
        self.sim = sim
        self.accepting = True
        self.cluster: Cluster | None = None  # set by the runtime when [cluster] is enabled
        self.started_at = time.time()
        self.started_at_monotonic = time.monotonic()
        # Set by the runtime once the fleet exists (the manager feeds instances through it).
        self.campaigns: Manager | None = None
        self.publish: Callable[[str, Mapping[str, Any]], None] = lambda topic, body: None

    @property
    def max_queue(self) -> int:
        return self.cfg.queue.max_size

    # ------------------------------------------------------------------ reads

    def snapshot(self, instance_id: str) -> InstanceSnapshot | None:
        snap = self.board.get(instance_id)
        if self.cluster is None or (
            snap is not None and self.children.get(instance_id) is not None
        ):
            return snap
        # Clustered and not running here: what its owner last saved in the shared store (the
        # board only knows the instances this node runs or saw at start).
        rec = self.store.get_instance(instance_id)
        if rec is None:
            return None
        depth = self.store.pending_count(instance_id)
        return InstanceSnapshot.placeholder(rec, depth, as_saved=True)

    def snapshots(
        self, *, tenant: str | None = None, state: str | None = None, here: bool = False
    ) -> list[InstanceSnapshot]:
        """Every instance's snapshot; clustered, `here` keeps the ones this node runs."""
        if self.cluster is None:
            every = self.board.all()
        elif here:
            every = [s for s in self.board.all() if self.children.get(s.instance_id) is not None]
        else:
            # One read of every instance, not one per instance run elsewhere (thousands).
            every = []
            for rec in self.store.list_instances():
                snap = self.board.get(rec.instance_id)
                if snap is None or self.children.get(rec.instance_id) is None:
                    depth = self.store.pending_count(rec.instance_id)
                    snap = InstanceSnapshot.placeholder(rec, depth, as_saved=True)
                every.append(snap)
        return [
            s
            for s in every
            if (tenant is None or s.tenant == tenant) and (state is None or s.state == state)
        ]

    def status(self, tenant: str | None = None, here: bool = False) -> dict[str, Any]:
        snaps = self.snapshots(tenant=tenant, here=here)
        per_state = {str(s): 0 for s in InstanceState}
        sent = failed = depth = in_flight = 0
        conflicts = 0
        for s in snaps:
            per_state[s.state] = per_state.get(s.state, 0) + 1
            sent += s.sent
            failed += s.failed
            depth += s.queue_depth
            in_flight += s.in_flight
            conflicts += int(s.conflicts.get("count", 0)) if s.conflicts else 0
        done = sent + failed
        alarms = list(self.sweep.alarms)[-20:]
        if tenant is not None:
            mine = {s.instance_id for s in snaps}
            alarms = [a for a in alarms if a.get("instance_id") in mine]
        return {
            "instances": len(snaps),
            "states": per_state,
            "queue": {"queued": depth, "in_flight": in_flight, "sent": sent, "failed": failed},
            "success_rate": (sent / done) if done else None,
            "conflicts_last_hour": conflicts,
            "alarms": alarms,
            "accepting": self.accepting,
            "uptime": time.time() - self.started_at,
        }

    # ------------------------------------------------------------------ lifecycle

    def create(
        self,
        instance_id: str | None,
        driver: str,
        tenant: str,
        settings: dict[str, Any],
        *,
        desired: str = "stopped",
        timeout: float | None = None,
    ) -> str:
        f: Future[str] = Future()
        msg = CreateChild(
            instance_id or new_instance_id(), driver, tenant, dict(settings), desired, f
        )
        self.supervisor.tell(msg)
        return self._wait(f, timeout, "the supervisor")

    def delete(self, instance_id: str, timeout: float | None = None) -> list[str]:
        f: Future[list[str]] = Future()
        self.supervisor.tell(DeleteChild(instance_id, f))
        return self._wait(f, timeout, "the supervisor")

    def respawn(self, instance_id: str, timeout: float | None = None) -> str:
        f: Future[str] = Future()
        self.supervisor.tell(Respawn(instance_id, f))
        return self._wait(f, timeout, "the supervisor")

    def start(self, instance_id: str, timeout: float | None = None) -> str:
        f: Future[str] = Future()
        return self._ask(instance_id, Start(f), f, timeout)

    def stop(self, instance_id: str, timeout: float | None = None) -> str:
        f: Future[str] = Future()
        return self._ask(instance_id, Stop(f), f, timeout)

    def restart(self, instance_id: str, timeout: float | None = None) -> str:
        f: Future[str] = Future()
        return self._ask(instance_id, Restart(f), f, timeout)

    def logout(self, instance_id: str, timeout: float | None = None) -> str:
        f: Future[str] = Future()
        return self._ask(instance_id, Logout(f), f, timeout)

    def reset(self, instance_id: str, timeout: float | None = None) -> str:
        f: Future[str] = Future()
        return self._ask(instance_id, Reset(f), f, timeout)

    def pair(
        self, instance_id: str, phone: str | None, timeout: float | None = None
    ) -> dict[str, Any]:
        f: Future[dict[str, Any]] = Future()
        return self._ask(instance_id, Pair(phone, f), f, timeout)

    # ------------------------------------------------------------------ messages

    def submit(self, record: MessageRecord) -> None:
        """Tell the instance a durable message waits. Never blocks."""
        ref = self.children.get(record.instance_id)
        if ref is not None:
            ref.tell(Submit(record))

    def cancel(
        self,
        instance_id: str,
        message_id: str,
        timeout: float | None = None,
        *,
        untried_only: bool = False,
        here_only: bool = False,
    ) -> str:
        """`untried_only`: only a message never handed to the driver (campaign take-backs).
        Clustered, such a take-back for an instance another node runs is asked of that node
        (`cluster.take_back`), unless `here_only` (that command's own call)."""
        if (
            untried_only
            and not here_only
            and self.cluster is not None
            and self.children.get(instance_id) is None
        ):
            return self.cluster.take_back(instance_id, message_id)
        f: Future[str] = Future()
        return self._ask(instance_id, Cancel(message_id, f, untried_only), f, timeout)

    def retry(
        self, instance_id: str, message_ids: list[str] | None, timeout: float | None = None
    ) -> list[str]:
        f: Future[list[str]] = Future()
        ids = None if message_ids is None else tuple(message_ids)
        return self._ask(instance_id, Retry(ids, f), f, timeout)

    def purge(self, instance_id: str, status: str = "queued", timeout: float | None = None) -> int:
        f: Future[int] = Future()
        return self._ask(instance_id, Purge(status, f), f, timeout)

    def query(self, instance_id: str, request: DriverRequest, timeout: float | None = None) -> Any:
        """Ask the instance's driver (group list, contact check, media download). The answer
        comes with a later driver event; `busy` when none came within the timeout,
        `invalid_state` when the instance is not online or its session ended meanwhile.
        Clustered, a contact check (a campaign's) on an instance another node runs is asked of
        that node; control commands are forwarded before they get here."""
        if (
            isinstance(request, CheckContacts)
            and self.cluster is not None
            and self.children.get(instance_id) is None
        ):
            return self.cluster.check_contacts(instance_id, request.numbers, timeout)
        f: Future[Any] = Future()
        return self._ask(instance_id, Query(request, f), f, timeout)

    def crash(self, instance_id: str) -> None:
        """Test hook (admin, sim): make the instance's actor raise."""
        self._ref(instance_id).tell(Crash())

    # ------------------------------------------------------------------ simulator

    def sim_fault(self, instance_id: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.sim is None:
            raise BadRequest("no simulator in this daemon", {"field": "cmd"})
        if kind == "crash":
            self.crash(instance_id)
            return {"injected": kind}
        if kind == "wedge_supervisor":
            self.supervisor.tell(Wedge(float(params.get("seconds", 5.0))))
            return {"injected": kind}
        if kind == "complete_pairing":
            self.sim.complete_pairing(instance_id)
            return {"injected": kind}
        try:
            self.sim.inject(instance_id, kind, **params)
        except (TypeError, ValueError) as e:
            raise BadRequest(str(e), {"field": "kind"}) from None
        return {"injected": kind}

    def sim_stats(self) -> dict[str, Any]:
        if self.sim is None:
            raise BadRequest("no simulator in this daemon", {"field": "cmd"})
        return self.sim.stats()

    def supervisor_alive(self, timeout: float = 1.0) -> bool:
        """The watchdog's question: does the supervisor still answer?"""
        f: Future[bool] = Future()
        self.supervisor.tell(Probe(f))
        try:
            return f.result(timeout)
        except FutureTimeout:
            return False

    # ------------------------------------------------------------------ plumbing

    def _ref(self, instance_id: str) -> pykka.ActorRef[InstanceActor]:
        ref = self.children.get(instance_id)
        if ref is None:
            raise NotFound(f"no instance {instance_id!r}")
        return ref

    def _ask(
        self, instance_id: str, msg: InstanceCommand, reply: Future[T], timeout: float | None
    ) -> T:
        """Tell the instance `msg` (which carries `reply`) and wait for its answer."""
        self._ref(instance_id).tell(msg)
        return self._wait(reply, timeout, f"instance {instance_id}")

    def _wait(self, f: Future[T], timeout: float | None, who: str) -> T:
        t = self.cfg.control.ask_timeout if timeout is None else timeout
        try:
            return f.result(t)
        except FutureTimeout:
            raise Busy(f"{who} did not answer within {t:g} s") from None


def accept_message(
    fleet: Fleet,
    *,
    instance_id: str,
    tenant: str,
    to: str,
    text: str | None,
    media: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    ttl: float | None = None,
) -> Future[tuple[MessageRecord, bool]]:
    """Make a message durable, then hand it to its instance.

    The returned Future resolves after the group commit (the moment `message.send` may answer);
    by then the instance has been told. Raises ShuttingDown before touching anything when the
    daemon no longer accepts work.
    """
    from waz_actors.errors import ShuttingDown
    from waz_actors.types import MessageStatus, new_message_id

    if not fleet.accepting:
        raise ShuttingDown("the daemon is shutting down; nothing was queued")
    now = time.time()
    expires = None if ttl is None else now + ttl * fleet.cfg.daemon.time_scale
    rec = MessageRecord(
        message_id=new_message_id(),
        instance_id=instance_id,
        tenant=tenant,
        to=to,
        text=text,
        media=media,
        status=str(MessageStatus.QUEUED),
        attempts=0,
        last_error=None,
        wa_id=None,
        idempotency_key=idempotency_key,
        created_at=now,
        updated_at=now,
        expires_at=expires,
    )

    def committed(f: Future[tuple[MessageRecord, bool]]) -> None:
        if f.exception() is None:
            stored, created = f.result()
            if created:
                fleet.submit(stored)

    # The store's own future, with the hand-over as its first callback: callbacks run in the
    # order they were added, so whoever waits on it hears after the instance was told.
    fut = fleet.store.enqueue(rec, max_queue=fleet.max_queue)
    fut.add_done_callback(committed)
    return fut
