"""Fencing an owner's writes on a store shared by a cluster (PostgreSQL).

An owner's write names its instance (`Writer.submit(op, owner=instance_id)`); with fencing on
(`Store.fence_writes`) it is wrapped, at submission, in a `Fenced` carrying this node's lease
epoch of that instance at that moment (None when the node holds no lease). The writer then
checks every epoch its transaction needs in ONE statement right after BEGIN
(`waz_fence_all`, cluster/schema.py), whatever the number of writes and instances in the
batch: the lease rows are locked FOR SHARE until the commit, so a takeover waits for the writes
that passed and every later write sees the new epoch. A refused write is not run at all: it
fails alone with `StaleEpoch`, and the other operations of the batch (other instances, other
clients) commit as if it had never been submitted. No epoch (not ours): refused without asking.

Off (SQLite, one daemon; or a PostgreSQL store without a cluster) nothing is wrapped and the
writer asks nothing: the cost is one attribute test per submit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from waz_actors.errors import StaleEpoch

if TYPE_CHECKING:
    from waz_actors.store.sql import Conn
    from waz_actors.store.writer import Tx

FenceKey = tuple[str, int | None]  # (instance id, lease epoch; None: no lease here)


class Fenced:
    """An owner's write and the epoch it was made under."""

    __slots__ = ("epoch", "instance_id", "op")

    def __init__(self, op: Callable[[Tx], Any], instance_id: str, epoch: int | None) -> None:
        self.op = op
        self.instance_id = instance_id
        self.epoch = epoch

    @property
    def key(self) -> FenceKey:
        return (self.instance_id, self.epoch)

    def __call__(self, tx: Tx) -> Any:
        return self.op(tx)


class Claimed:
    """A write fenced by a cluster claim (`Writer.submit(op, claim=key)`; the operation calls
    `waz_claim_fence` itself): the writer locks the claim rows its batch names in key order
    right after BEGIN, as the claims round does (cluster/claims.py), so the two never
    deadlock whatever order the batch's operations fence in."""

    __slots__ = ("claim", "op")

    def __init__(self, op: Callable[[Tx], Any], claim: str) -> None:
        self.op = op
        self.claim = claim

    def __call__(self, tx: Tx) -> Any:
        return self.op(tx)


def claims_of(ops: Iterable[Callable[[Tx], Any]]) -> list[str]:
    """The claim keys a batch names, sorted (the order every holder locks them in)."""
    keys = set()
    for op in ops:
        inner = op.op if type(op) is Fenced else op
        if type(inner) is Claimed:
            keys.add(inner.claim)
    return sorted(keys)


def lock_claims(conn: Conn, keys: list[str]) -> None:
    """Lock these claim rows FOR SHARE in key order until the commit; each write's own
    `waz_claim_fence` then finds its row locked already and checks it without waiting."""
    if keys and getattr(conn, "shared", False):  # SQLite: one daemon, no claims table
        conn.execute(
            "SELECT key FROM claims WHERE key = ANY(?::text[]) ORDER BY key FOR SHARE", (keys,)
        ).fetchall()


class Fencing:
    """This node's side of the fence: its lease epochs, and who hears of a refusal.

    `epoch_of(instance_id)` is called on the submitting thread (an actor's), so it must be
    quick (the cluster node's is a dict read under a lock). `on_stale(instance_id, epoch)` is
    called on the writer thread after a batch in which the database refused that epoch: it
    must only tell (the cluster node drops the lease and has the session closed)."""

    def __init__(
        self,
        epoch_of: Callable[[str], int | None],
        on_stale: Callable[[str, int | None], None] | None = None,
    ) -> None:
        self.epoch_of = epoch_of
        self.on_stale = on_stale
        self.checks = 0  # fence statements run (one per transaction that needed one)
        self.refusals = 0

    def wrap(self, op: Callable[[Tx], Any], instance_id: str) -> Fenced:
        return Fenced(op, instance_id, self.epoch_of(instance_id))

    def refused(self, conn: Conn, keys: Iterable[FenceKey]) -> set[FenceKey]:
        """The keys whose epoch is not the current one of a held, unexpired lease: one
        statement for all of them, which also locks their lease rows until the commit."""
        out = {k for k in keys if k[1] is None}
        asked = [(i, e) for i, e in keys if e is not None]
        if asked:
            self.checks += 1
            rows = conn.execute(
                "SELECT * FROM waz_fence_all(?::text[], ?::bigint[])",
                ([i for i, _ in asked], [e for _, e in asked]),
            ).fetchall()
            out.update(asked[int(r[0]) - 1] for r in rows)
        self.refusals += len(out)
        return out

    def stale(self, refused: Iterable[FenceKey]) -> None:
        if self.on_stale is None:
            return
        for instance_id, epoch in refused:
            self.on_stale(instance_id, epoch)


def stale_epoch(key: FenceKey) -> StaleEpoch:
    instance_id, epoch = key
    held = "no lease" if epoch is None else f"lease epoch {epoch}"
    return StaleEpoch(
        f"instance {instance_id}: this node's {held} is not the current one; write refused",
        {"instance_id": instance_id, "epoch": epoch},
    )


__all__ = ["Claimed", "FenceKey", "Fenced", "Fencing", "claims_of", "lock_claims", "stale_epoch"]
