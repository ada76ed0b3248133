"""The supervisor's cluster handlers: start an instance whose lease this node took, wake it,
hand it over, and stop the actors of fenced leases.

A plain class over the supervisor's state (the Supervisor owns it and calls it from its actor
thread). The two ways a session ends here differ on purpose:
- a hand-over (SIGTERM, drain, rebalancing) has time: the send in flight settles (Drain), the
  actor stops, and only then is the lease released (`on_stopped`);
- a fence (lease lost, renewals stuck, a write refused) has not: the sessions were already
  closed by the fence itself from the node's thread (actors/sessions.py), and this only stops
  the actors, all in parallel with one bound, reading nothing from the store (behind a
  partition a read hangs on the cut connection).
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

import pykka
from loguru import logger

from waz_actors.actors.messages import (
    ClusterFence,
    ClusterStart,
    ClusterStop,
    ClusterWake,
    Drain,
    Reload,
)
from waz_actors.errors import StaleEpoch

if TYPE_CHECKING:
    from waz_actors.actors.supervisor import Supervisor


class ClusterHandlers:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def start(self, msg: ClusterStart) -> None:
        """The lease is ours: run the instance (its queue and state come from the store)."""
        sup = self.sup
        sup.owned.add(msg.instance_id)
        if sup.children.get(msg.instance_id) is not None:
            return
        if (rec := sup.deps.store.get_instance(msg.instance_id)) is None:
            return
        log = logger.bind(instance=msg.instance_id)
        try:  # the last owner's `sending` rows are queued again, same ids (outcome unknown)
            n = sup.deps.store.recover_sending(msg.instance_id)
        except StaleEpoch as e:  # the lease is gone already: the node stops it anyway
            sup.owned.discard(msg.instance_id)
            log.warning("cluster: not started: {}", e)
            return
        if n:
            log.info("cluster: {} message(s) left sending by the last owner requeued", n)
        sup._spawn(rec)

    def wake(self, msg: ClusterWake) -> None:
        """A message was queued for an instance of ours on another node: it reads that row.
        The wake channel reconnected (None): every instance reads its queue again."""
        sup = self.sup
        ids = sup.owned if msg.instance_id is None else {msg.instance_id} & sup.owned
        for iid in ids:
            ref = sup.children.get(iid)
            if ref is not None:
                ref.tell(Reload(msg.message_id))

    def hand_over(self, msg: ClusterStop) -> None:
        """Close the session, in-flight send settled first (Drain), like a shutdown; the queue
        stays in the store for the next owner, and the lease is released after (on_stopped)."""
        sup = self.sup
        sup.owned.discard(msg.instance_id)
        ref = sup.children.pop(msg.instance_id)
        log = logger.bind(instance=msg.instance_id)
        if ref is not None:
            log.info("cluster: stopping here ({})", msg.reason)
            timeout = sup.deps.cfg.control.ask_timeout
            done: Future[int] = Future()
            ref.tell(Drain(done))
            try:
                done.result(timeout)
            except (FutureTimeout, Exception):
                log.warning("did not settle in time; its sends stay durable")
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.error("did not stop in time")
        sup.pongs.pop(msg.instance_id, None)
        self._show_gone(msg.instance_id, msg.reason)
        if msg.on_stopped is not None:
            msg.on_stopped(msg.instance_id)

    def fenced(self, msg: ClusterFence) -> None:
        """Stop the actors of fenced leases: told to stop all at once, awaited together."""
        sup = self.sup
        t0 = time.monotonic()
        sup.deps.sessions.trip(msg.instance_ids)  # done by the fence already: idempotent
        stopping: list[tuple[str, pykka.Future[Any]]] = []
        for iid in msg.instance_ids:
            sup.owned.discard(iid)
            sup.pongs.pop(iid, None)
            if (ref := sup.children.pop(iid)) is not None:
                stopping.append((iid, ref.stop(block=False)))
        deadline = t0 + self.stop_bound()
        stuck = []
        for iid, fut in stopping:
            try:
                fut.get(timeout=max(0.0, deadline - time.monotonic()))
            except pykka.Timeout:
                stuck.append(iid)  # its session is closed already; the actor ends later
            except pykka.ActorDeadError:
                pass
        for iid in msg.instance_ids:
            self._show_gone(iid, msg.reason)
        logger.info(
            "cluster: {} fenced actor(s) stopped in {:.0f} ms ({})",
            len(stopping) - len(stuck),
            (time.monotonic() - t0) * 1000,
            msg.reason,
        )
        if stuck:
            logger.warning(
                "cluster: {} fenced actor(s) still busy after {:.1f} s (sessions closed): {}",
                len(stuck),
                self.stop_bound(),
                ", ".join(stuck[:10]),
            )

    def stop_bound(self) -> float:
        """How long the supervisor waits for fenced actors: half the fence margin at most."""
        cfg = self.sup.deps.cfg
        half_margin = cfg.cluster.fence_margin * cfg.daemon.time_scale / 2
        return min(cfg.control.ask_timeout, half_margin)

    def _show_gone(self, instance_id: str, reason: str) -> None:
        """The board shows the instance stopped here, from what it showed: no store read."""
        board = self.sup.deps.board
        snap = board.get(instance_id)
        if snap is not None:
            board.put(
                dataclasses.replace(
                    snap,
                    state="stopped",
                    since=self.sup.deps.clock.wall(),
                    last_reason=f"not on this node: {reason}",
                    in_flight=0,
                    pairing=None,
                )
            )
