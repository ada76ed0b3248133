"""The outbox's status writes, and what happens when the store cannot write them.

A message goes out only once its `sending` status is durable, and its outcome (`sent`,
`failed`, a retry) must reach the disk too: a status lost to a full disk makes the next daemon
resend a message already delivered. So every write's Future answers the instance by a posted
message (`Written`): a failure always, a commit only when someone waits for it (a send whose
`sending` write is not committed yet; a write made again after a failure). The actor never
blocks on the disk, and the writes still share the store's group commits.

While the store refuses writes the outbox sends nothing: an alarm is raised once, the writes
that failed are kept (the latest per message) and made again after a backoff in daemon time,
and sending resumes by itself with the first write that goes through.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from waz_actors.actors.instance.context import Context
from waz_actors.actors.messages import StatusWrite, Written
from waz_actors.errors import ShuttingDown, StaleEpoch, StorageFull, WazError, disk_full
from waz_actors.types import FINAL_STATUSES, MessageStatus

if TYPE_CHECKING:
    from loguru import Logger

RETRY_FIRST = 1.0  # daemon seconds before the first write after a failed one
RETRY_MAX = 60.0


class Saver:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._token = 0
        # message id -> token of its latest write, so a late failure of a write that a later
        # one replaced is not made again over it. Dropped with a final status (no write follows).
        self._latest: dict[str, int] = {}
        self.unsaved: dict[str, StatusWrite] = {}  # failed writes to make again, oldest first
        self.paused = False  # the store refused a write: no send until the retry timer
        # The database refused a write for a stale lease epoch (a cluster): this node is no
        # longer the owner. Nothing is written again and nothing more is sent; the cluster node
        # heard of it too (Store.fence_writes on_stale) and has the session closed.
        self.fenced = False
        self.outage = False  # an alarm is out; cleared by the next write that commits
        self._delay = RETRY_FIRST

    def write(self, w: StatusWrite) -> Pending:
        """Submit `w`. A failure is posted back as `Written`; a commit only if `confirm`ed."""
        self._token += 1
        token = self._token
        mid = w.message_id
        self.unsaved.pop(mid, None)  # this write replaces a failed one
        if w.status in FINAL_STATUSES:
            self._latest.pop(mid, None)
        else:
            self._latest[mid] = token
        fut = self.ctx.deps.store.update_message(
            mid,
            w.status,
            attempts=w.attempts,
            error=w.error,
            wa_id=w.wa_id,
            reason=w.reason,
            only_if=w.only_if,
            media_info=w.media_info,
            possible_duplicate=w.possible_duplicate,
            outcome_unknown=w.outcome_unknown,
            owner=self.ctx.id,
        )
        post, log = self.ctx.post, self.ctx.log

        def failed(f: Future[bool]) -> None:  # on the writer thread: post, nothing more
            error = f.exception()
            if error is not None:
                _tell(post, Written(w, token, error), log)

        fut.add_done_callback(failed)
        return Pending(token, w, fut)

    def confirm(self, p: Pending) -> None:
        """Have the commit of `p` posted back too (at once if it is committed already)."""
        post, log = self.ctx.post, self.ctx.log

        def committed(f: Future[bool]) -> None:
            if f.exception() is None:
                _tell(post, Written(p.write, p.token), log)

        p.future.add_done_callback(committed)

    def forget(self, message_id: str) -> None:
        """The message left the outbox by another path (cancel, purge)."""
        self._latest.pop(message_id, None)
        self.unsaved.pop(message_id, None)

    def committed(self) -> None:
        """A write went through: the store writes again."""
        self._delay = RETRY_FIRST
        if self.outage:
            self.outage = False
            self.ctx.log.info("the store writes again; sending resumes")
            self.ctx.alarm("storage_recovered", "the store writes again; sending resumed")

    def failed(self, msg: Written) -> bool:
        """A write failed. True when the store could not write (paused, to be written again);
        False when the store refused the change itself (the message is gone or final), or
        is closing."""
        assert msg.error is not None
        w, error = msg.write, msg.error
        if isinstance(error, ShuttingDown):
            return False
        if isinstance(error, StaleEpoch):
            if not self.fenced:
                self.fenced = self.paused = True
                self.ctx.log.warning("fenced out: {}; sending stops here", error)
            return True  # the message stays where it is: the new owner has it
        if isinstance(error, WazError) and not isinstance(error, StorageFull):
            self.ctx.log.warning("status {} of {} refused: {}", w.status, w.message_id, error)
            return False
        # A failed `sending` is not made again: nothing was sent, and the next attempt to send
        # writes it anew. An outcome is, unless a later write of the message replaced it.
        latest = self._latest.get(w.message_id, msg.token) == msg.token
        if latest and w.status != MessageStatus.SENDING:
            self.unsaved[w.message_id] = w
        self._pause(error)
        return True

    def _pause(self, error: BaseException) -> None:
        ctx = self.ctx
        self.paused = True
        if not self.outage:
            self.outage = True
            kind = "storage_full" if disk_full(error) else "storage_error"
            ctx.log.error("the store cannot write ({}): sending paused", error)
            ctx.alarm(kind, f"the store cannot write, sending paused: {error}")
        if not ctx.timers.pending("store_retry"):
            ctx.timers.schedule("store_retry", self._delay)
            self._delay = min(self._delay * 2, RETRY_MAX)

    def retry(self) -> None:
        """The `store_retry` timer: write again what failed, and let the outbox try to send
        (its `sending` write is the probe); a failure pauses again, for longer."""
        if self.fenced:
            return
        self.paused = False
        for w in list(self.unsaved.values()):
            self.confirm(self.write(w))


@dataclass(frozen=True, slots=True)
class Pending:
    """A status write submitted: its token (to tell its answer from a stale one) and Future."""

    token: int
    write: StatusWrite
    future: Future[bool]

    @property
    def committed(self) -> bool:
        return self.future.done() and self.future.exception() is None


def _tell(post: Callable[[object], None], msg: Written, log: Logger) -> None:
    try:
        post(msg)
    except Exception:  # the actor is gone; its successor reads the store afresh
        log.debug("status write of {} answered after the instance stopped", msg.write.message_id)
