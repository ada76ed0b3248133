"""The lease rules as pure, clock-injected classes: when to renew, when to fence, how many to
take or give back. No SQL and no threads here (cluster/leases.py is the SQL, cluster/node.py the
thread); every method takes `now`, a monotonic time in real seconds, so tests drive it by hand.

Why self-fencing is safe: a lease's expiry is set by the database, `now() + ttl`, when a renew
(or the acquire) runs there. The node stamps `sent_at` from its own monotonic clock *before* it
sends that statement, so the database's `now()` is later than `sent_at` and the lease lives at
least until `sent_at + ttl` as the node counts time. The node closes the session at
`sent_at + ttl - margin`; `margin` covers the two clocks running at slightly different rates
and the time the close itself takes. A new owner may only take a lease the database sees
expired, and then waits `takeover_delay` more before it connects: the old session is closed by
then, whatever happened to the network in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    ttl: float  # a lease lives this long past its last renew (database clock)
    renew_every: float  # one batched renew round this often
    margin: float  # close the session this long before the lease could run out
    takeover_delay: float = 0.0  # a lease taken from another owner: wait this before connecting

    def __post_init__(self) -> None:
        if min(self.ttl, self.renew_every, self.margin) <= 0 or self.takeover_delay < 0:
            raise ValueError("lease durations must be positive")
        # A renew round that fails once must still leave time for a second one before the
        # fence: otherwise one slow round would close every session of a healthy node.
        if 2 * self.renew_every + self.margin > self.ttl:
            raise ValueError(
                f"cluster.lease_ttl ({self.ttl:g}) must exceed 2 x renew_every "
                f"({self.renew_every:g}) + fence_margin ({self.margin:g})"
            )


class LeaseKeeper:
    """The leases this node believes it holds, each with the send time of its last confirmed
    renew; decides which ones must be fenced (closed locally) now."""

    def __init__(self, timing: LeaseTiming) -> None:
        self.timing = timing
        self._confirmed: dict[str, float] = {}  # instance_id -> sent_at of last good renew
        self._epochs: dict[str, int] = {}
        self._last_round: float | None = None

    # -- what the database confirmed ----------------------------------------------------------

    def acquired(self, instance_id: str, epoch: int, sent_at: float) -> None:
        self._confirmed[instance_id] = sent_at
        self._epochs[instance_id] = epoch

    def renewed(self, instance_ids: list[str] | set[str], sent_at: float) -> None:
        for iid in instance_ids:
            if iid in self._confirmed:
                self._confirmed[iid] = max(self._confirmed[iid], sent_at)

    def drop(self, instance_id: str) -> None:
        """Released, lost or fenced: no longer ours."""
        self._confirmed.pop(instance_id, None)
        self._epochs.pop(instance_id, None)

    # -- questions ----------------------------------------------------------------------------

    def held(self) -> dict[str, int]:
        """instance_id -> epoch of every lease held."""
        return dict(self._epochs)

    def epoch(self, instance_id: str) -> int | None:
        return self._epochs.get(instance_id)

    def __len__(self) -> int:
        return len(self._epochs)

    def deadline(self, instance_id: str) -> float | None:
        """When this node must have closed the session, by its own clock."""
        sent = self._confirmed.get(instance_id)
        return None if sent is None else sent + self.timing.ttl - self.timing.margin

    def next_deadline(self) -> float | None:
        if not self._confirmed:
            return None
        return min(self._confirmed.values()) + self.timing.ttl - self.timing.margin

    def to_fence(self, now: float) -> list[str]:
        """Leases whose renewals did not come back in time: close them now."""
        limit = self.timing.ttl - self.timing.margin
        return sorted(i for i, sent in self._confirmed.items() if now >= sent + limit)

    def renew_due(self, now: float) -> bool:
        return self._last_round is None or now - self._last_round >= self.timing.renew_every

    def next_renew(self, now: float) -> float:
        """When the next renew round is due (`now` if one is due already)."""
        if self._last_round is None:
            return now
        return max(now, self._last_round + self.timing.renew_every)

    def round_started(self, now: float) -> None:
        self._last_round = now


def fair_share(instances: int, live_nodes: int) -> int:
    """Instances per node when they are spread evenly (rounded up so every one has a home)."""
    if instances <= 0:
        return 0
    return math.ceil(instances / max(1, live_nodes))


@dataclass(frozen=True, slots=True)
class PlacementView:
    """What one placement round knows (read from the database at the start of the round)."""

    instances: int  # every instance that has a lease row
    live_nodes: int  # nodes with a fresh heartbeat that are not draining
    mine: int  # leases this node holds
    draining: bool  # this node was asked to give its leases back


@dataclass(frozen=True, slots=True)
class PlacementPlan:
    acquire: int = 0
    release: int = 0
    more: bool = False  # the budget ran out before the fair share was reached


# The shortest pause between two placement rounds while a node catches up (each round costs
# a heartbeat, a view and an acquire or release statement).
CATCH_UP_GAP = 0.2


class Placement:
    """How many leases to take or give back this round: up to the fair share, at a bounded
    rate (a token bucket, `rate` per second, `burst` at most) so a joining node does not start
    hundreds of sessions at once, and a draining or over-full node hands them over gradually."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("placement rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def plan(self, view: PlacementView, now: float) -> PlacementPlan:
        self._refill(now)
        budget = int(self._tokens)
        if view.draining:
            n = min(view.mine, budget)
            self._tokens -= n
            return PlacementPlan(release=n, more=n < view.mine)
        # A node that is not draining counts itself among the live ones even if its own
        # heartbeat was not read yet.
        share = fair_share(view.instances, max(1, view.live_nodes))
        if view.mine < share:
            n = min(share - view.mine, budget)
            self._tokens -= n
            return PlacementPlan(acquire=n, more=n < share - view.mine)
        if view.mine > share:
            n = min(view.mine - share, budget)
            self._tokens -= n
            return PlacementPlan(release=n, more=n < view.mine - share)
        return PlacementPlan()

    @property
    def gap(self) -> float:
        """How soon a round that ran out of budget comes back: at least one token refilled."""
        return max(CATCH_UP_GAP, 1.0 / self.rate)
