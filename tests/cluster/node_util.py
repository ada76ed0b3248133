"""Cluster nodes in one test process: real lease SQL and threads, hooks that record when
each node ran each instance, so tests can check no two ever overlapped."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from waz_actors.cluster.lease_policy import LeaseTiming, Placement
from waz_actors.cluster.leases import LeaseStore
from waz_actors.cluster.node import ClusterNode

FAST = LeaseTiming(ttl=1.2, renew_every=0.2, margin=0.5, takeover_delay=0.1)


@dataclass
class Runs:
    """Every (node, instance, started, ended) interval, from all nodes of a test."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    open: dict[tuple[str, str], float] = field(default_factory=dict)
    closed: list[tuple[str, str, float, float]] = field(default_factory=list)

    def running(self, node: str) -> set[str]:
        with self.lock:
            return {i for (n, i) in self.open if n == node}

    def overlaps(self) -> list[str]:
        now = time.monotonic()
        with self.lock:
            spans = [*self.closed, *((n, i, t, now) for (n, i), t in self.open.items())]
        by: dict[str, list[tuple[float, float, str]]] = {}
        for n, i, a, b in spans:
            by.setdefault(i, []).append((a, b, n))
        bad = []
        for i, s in by.items():
            s.sort()
            for k, (a2, _b2, n2) in enumerate(s):
                for _a1, b1, n1 in s[:k]:  # every earlier span, not just the previous one
                    if a2 < b1 and n1 != n2:
                        bad.append(f"{i}: {n1} until {b1:.3f}, {n2} from {a2:.3f}")
        return bad


class RecordingHooks:
    def __init__(self, node_id: str, runs: Runs) -> None:
        self.node_id = node_id
        self.runs = runs
        self.node: ClusterNode | None = None
        self.reasons: list[tuple[str, str]] = []
        self.dead = False

    def start(self, instance_id: str, epoch: int) -> None:
        with self.runs.lock:
            if self.dead:
                return
            self.runs.open.setdefault((self.node_id, instance_id), time.monotonic())

    def stop(self, instance_id: str, reason: str, release: bool) -> None:
        self.close(instance_id)
        self.reasons.append((instance_id, reason))
        if release and self.node is not None:
            self.node.stopped(instance_id)

    def fence(self, instance_ids: list[str], reason: str) -> None:
        for iid in instance_ids:
            self.stop(iid, reason, False)

    def close(self, instance_id: str) -> None:
        with self.runs.lock:
            t = self.runs.open.pop((self.node_id, instance_id), None)
            if t is not None:
                self.runs.closed.append((self.node_id, instance_id, t, time.monotonic()))

    def crash(self) -> None:
        """kill -9: every session of this node ends now, and none starts again."""
        with self.runs.lock:
            self.dead = True
        for iid in list(self.runs.running(self.node_id)):
            self.close(iid)


def make_node(
    url: str,
    node_id: str,
    runs: Runs,
    *,
    timing: LeaseTiming = FAST,
    rate: float = 200.0,
    ids: list[str] | None = None,
) -> tuple[ClusterNode, RecordingHooks]:
    hooks = RecordingHooks(node_id, runs)
    node = ClusterNode(
        LeaseStore(url, node_id, timing.ttl, timeout=1.0),
        timing,
        Placement(rate, max(1, int(rate))),
        hooks,
        instances=(lambda: list(ids)) if ids else None,
    )
    hooks.node = node
    return node, hooks
