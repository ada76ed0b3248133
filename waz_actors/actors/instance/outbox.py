"""The instance's side of the durable queue: what waits, what is in flight, and send results.

The store holds the truth; this is the in-memory order of the instance's queued messages. A
message goes out only while the instance is online, idle and the pacer allows it, one at a
time, and only once its `sending` status is durable (see saving.py: a status lost to a full
disk would make the next daemon resend it). Only a send that reached WhatsApp and failed
consumes a retry (invariant 4).

A send whose outcome is unknown (the session closed or timed out with it in flight, the host died,
the daemon stopped) goes again with the same id. On a driver whose network drops such a second
copy (`dedup_resends`) that is harmless; on one that does not, queue.resend_unknown decides:
"always" resends it marked possible_duplicate (durably, in its `sending` write, before the bytes
leave), "never" ends it in status `unknown`.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from waz_actors.actors.instance.context import Context
from waz_actors.actors.instance.saving import Pending, Saver
from waz_actors.actors.messages import StatusWrite, Written
from waz_actors.drivers import base as driver
from waz_actors.errors import InvalidState, ShuttingDown
from waz_actors.policy.health import HealthThresholds, SuccessWindow
from waz_actors.policy.pacing import Pacer
from waz_actors.policy.retry import RetryPolicy
from waz_actors.store.records import MessageRecord
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M


@dataclass
class Queued:
    record: MessageRecord
    not_before: float = 0.0  # daemon time before which a retry must not go
    unknown: bool = False  # the last attempt's outcome is unknown: it may have reached the phone


class Outbox:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        cfg = ctx.cfg.queue
        self.pacer = Pacer.from_config(cfg)
        self.retry = RetryPolicy.from_config(cfg)
        self.success = SuccessWindow()
        self.thresholds = HealthThresholds.from_config(ctx.cfg.health)
        self.queue: deque[Queued] = deque()
        self.queued_ids: set[str] = set()
        self.in_flight: Queued | None = None
        self.in_flight_at = 0.0  # daemon time the send in flight went to the driver
        # The token of the in-flight message's `sending` write while the send waits for its
        # commit; 0 once handed to the driver.
        self.awaiting = 0
        # The next message's `sending`, written ahead while another is in flight (pacing off;
        # see _prepare_next).
        self.prepared: Pending | None = None
        self.saver = Saver(ctx)
        self.sent = 0
        self.failed = 0
        # Set by a drain (shutdown): nothing new is sent, nor any connection opened.
        self.draining: Future[int] | None = None

    def load(self) -> None:
        """Read the instance's pending messages from the store."""
        store = self.ctx.deps.store
        # The writer updates the pending counter before it resolves a commit's future, so a
        # message committed before this read is counted here or told to us afterwards.
        if store.pending_count(self.ctx.id):
            for rec in store.pending_messages(self.ctx.id):
                self.add(rec)

    def reload(self, message_id: str | None = None) -> None:
        """Queued rows another node accepted (cluster wake-up): the one named by the wake-up,
        or all of them after the wake channel reconnected (a wake-up may have been missed).
        Only `queued` ones: a row is durably `sending` before it is sent, so one read here is
        neither in flight nor sent, and `add` skips those already held."""
        only = None if message_id is None else [message_id]
        for rec in self.ctx.deps.store.pending_messages(self.ctx.id, only):
            if rec.status == "queued":
                self.add(rec)

    def add(self, rec: MessageRecord) -> None:
        if rec.message_id in self.queued_ids:
            return
        if self.in_flight is not None and self.in_flight.record.message_id == rec.message_id:
            return
        self.queue.append(Queued(rec, unknown=rec.outcome_unknown))
        self.queued_ids.add(rec.message_id)

    def drop(self, message_id: str) -> None:
        self.queued_ids.discard(message_id)
        self.saver.forget(message_id)
        self.queue = deque(q for q in self.queue if q.record.message_id != message_id)

    # ------------------------------------------------------------------ sending

    def pump(self, session: driver.Driver | None) -> None:
        """Send the next message if online, idle and the pacer allows it."""
        ctx = self.ctx
        if (
            ctx.state != S.ONLINE
            or session is None
            or self.draining is not None
            or self.saver.paused
            or not self.queue
        ):
            return
        if self.in_flight is not None:
            self._prepare_next(ctx.clock.now(), session)  # a message that came in meanwhile
            return
        now = ctx.clock.now()
        wall = ctx.clock.wall()
        # Expired messages leave the queue as expired, whatever their position.
        while self.queue and _expired(self.queue[0].record, wall):
            q = self.queue.popleft()
            self.queued_ids.discard(q.record.message_id)
            if self.prepared is not None and self.prepared.write.message_id == q.record.message_id:
                self.prepared = None  # `sending` -> `expired` is allowed: nothing to undo
            self._finish(q.record, M.EXPIRED, "ttl expired")
        ready = next((q for q in self.queue if q.not_before <= now), None)
        if ready is None:
            if self.queue:
                ctx.timers.schedule("pump", min(q.not_before for q in self.queue) - now)
            ctx.publish_snapshot(light=True)
            return
        wait = self.pacer.delay(now)
        if wait > 0:
            if not ctx.timers.pending("pump"):
                ctx.timers.schedule("pump", wait)
            return
        doubled = ready.unknown and not session.dedup_resends
        if doubled and ctx.cfg.queue.resend_unknown == "never":
            # At most once: the operator prefers a missing message to a second copy. Never
            # written ahead (see _prepare_next), so there is no `sending` to undo.
            self.queue.remove(ready)
            self.queued_ids.discard(ready.record.message_id)
            self._finish(
                ready.record,
                M.UNKNOWN,
                "outcome unknown; not resent (queue.resend_unknown = never)",
            )
            self.pump(session)
            return
        self.pacer.take(now)
        self.queue.remove(ready)
        self.queued_ids.discard(ready.record.message_id)
        self.in_flight = ready
        write = _sending(ready.record.message_id, doubled)
        pending, self.prepared = self.prepared, None
        if pending is None or pending.write != write:
            if pending is not None and pending.write.message_id != write.message_id:
                self.prepared = pending  # written ahead for another message: still good
            pending = self.saver.write(write)
        if pending.committed:
            self._hand_over(ready, session, write)
        else:
            # The send waits for this write's commit (on_written): many instances' `sending`
            # writes share one group commit, and the actor handles other messages meanwhile.
            # A possible duplicate too: its flag is on the disk before the bytes leave.
            self.awaiting = pending.token
            self.saver.confirm(pending)
        self._prepare_next(now, session)
        ctx.publish_snapshot(light=True)

    def _prepare_next(self, now: float, session: driver.Driver) -> None:
        """With no pacing gap to wait, write the next message's `sending` now, so its commit
        overlaps the send in flight instead of following it: an instance waiting for a commit
        per message would send at the writer's pace. Harmless if the daemon dies meanwhile: a
        `sending` never sent is queued again at start-up (recover_sending), same id, and its
        resend is dropped by the network. Only on such a network (`dedup_resends`): on another,
        that restart would take the message for a possible duplicate (or, with resend_unknown =
        never, end it `unknown`) though it never left."""
        if (
            self.prepared is not None
            or self.saver.paused
            or not session.dedup_resends
            or self.pacer.delay(now) > 0
        ):
            return
        wall = self.ctx.clock.wall()
        nxt = next((q for q in self.queue if q.not_before <= now), None)
        if nxt is None or _expired(nxt.record, wall):
            return
        # Nobody is told of its commit: the pump looks at its Future when the message's turn
        # comes, which saves the instance a message (and a thread wake-up) per send.
        self.prepared = self.saver.write(_sending(nxt.record.message_id, doubled=False))

    def _unprepare(self, reason: str) -> None:
        """The message written `sending` ahead will not go next: `queued` again. Written after
        the `sending` (one writer, in order), and only if it is still `sending`."""
        if self.prepared is None:
            return
        mid = self.prepared.write.message_id
        self.prepared = None
        self.saver.write(StatusWrite(mid, M.QUEUED, reason, only_if=frozenset({M.SENDING})))

    @property
    def handed_over(self) -> bool:
        """A message is in flight and the driver has it (its outcome is out of our hands)."""
        return self.in_flight is not None and not self.awaiting

    @property
    def waits_on_network(self) -> bool:
        """Something the network should answer: a send handed over, or queued messages the
        store lets go (while it cannot write, nothing is sent and silence is expected)."""
        return self.handed_over or (bool(self.queue) and not self.saver.paused)

    def on_written(self, msg: Written, session: driver.Driver | None) -> None:
        """The store's answer to a status write: send once `sending` is durable; pause when
        the store cannot write."""
        q = self.in_flight
        ours = q is not None and self.awaiting == msg.token
        if msg.error is None:
            self.saver.committed()
            if ours and q is not None:
                self._hand_over(q, session, msg.write)
            return
        storage = self.saver.failed(msg)
        prepared = self.prepared
        if prepared is not None and prepared.token == msg.token:
            self.prepared = None  # still in the queue, still `queued` in the store
            if not storage and not isinstance(msg.error, ShuttingDown):
                self.drop(prepared.write.message_id)  # final or gone
        if not ours or q is None:
            return
        # Not sent: nothing happened to it but a failed write, so no retry is consumed.
        self.in_flight = None
        self.awaiting = 0
        if storage or isinstance(msg.error, ShuttingDown):
            self.queue.appendleft(q)
            self.queued_ids.add(q.record.message_id)
        # Else the store refused `sending` (the message is final or gone): it leaves the queue.
        self.ctx.publish_snapshot(light=True)

    def _hand_over(self, q: Queued, session: driver.Driver | None, write: StatusWrite) -> None:
        """Send `q`, whose `sending` (`write`) is durable."""
        ctx = self.ctx
        self.awaiting = 0
        if session is None:  # cannot be: closing the session requeues the message in flight
            self.requeue_in_flight("no session")
            return
        if write.possible_duplicate:
            q.record = dataclasses.replace(q.record, possible_duplicate=True)
            ctx.log.warning("{}: {}", q.record.message_id, write.reason)
        rec = q.record
        self.in_flight_at = ctx.clock.now()
        ctx.emit_message(rec.message_id, M.SENDING, write.reason, extra=_flags(rec))
        if not ctx.timers.pending("processing"):
            ctx.timers.schedule("processing", ctx.cfg.queue.processing_timeout)
        session.send(
            driver.OutgoingMessage(
                message_id=rec.message_id, to=rec.to, text=rec.text, media=rec.media
            )
        )
        # No snapshot: the one of the pump that chose this message already shows it in flight.

    def retry_store(self) -> None:
        """The `store_retry` timer (the caller pumps)."""
        self.saver.retry()

    def on_send_result(self, ev: driver.SendResult) -> bool:
        """Settle the send in flight; False for a late result of one already settled."""
        ctx = self.ctx
        q = self.in_flight
        if q is None or q.record.message_id != ev.message_id or self.awaiting:
            ctx.log.debug("late send result for {}", ev.message_id)
            return False
        self.in_flight = None
        now = ctx.clock.now()
        rec = q.record
        attempts = rec.attempts + 1
        save = self.saver.write
        # What the driver fetched goes to the store with the status (message.get shows it).
        fetched = dict(ev.media) if ev.media else None
        mid = rec.message_id
        if ev.ok:
            self.sent += 1
            self.success.record(now, True)
            save(
                StatusWrite(
                    mid,
                    M.SENT,
                    "sent",
                    attempts=attempts,
                    wa_id=ev.wa_id,
                    media_info=fetched,
                    outcome_unknown=False,
                )
            )
            ctx.emit_message(
                mid, M.SENT, "sent", attempts=attempts, wa_id=ev.wa_id, extra=_flags(rec)
            )
        elif self.retry.should_retry(attempts, permanent=ev.permanent):
            self.success.record(now, False)
            delay = self.retry.delay(attempts)
            rec = dataclasses.replace(rec, attempts=attempts, last_error=ev.error)
            # A driver that lost the answer says so ("outcome unknown: ..."): it may have left.
            unknown = (ev.error or "").startswith("outcome unknown")
            self.queue.appendleft(Queued(rec, not_before=now + delay, unknown=unknown))
            self.queued_ids.add(mid)
            reason = f"send failed, retry in {delay:.0f} s: {ev.error}"
            save(
                StatusWrite(
                    mid,
                    M.QUEUED,
                    reason,
                    attempts=attempts,
                    error=ev.error,
                    media_info=fetched,
                    outcome_unknown=unknown,
                )
            )
            ctx.emit_message(mid, M.QUEUED, reason, attempts=attempts)
        else:
            self.success.record(now, False)
            why = "permanent error" if ev.permanent else "retries exhausted"
            rec = dataclasses.replace(rec, attempts=attempts, last_error=ev.error)
            self._finish(rec, M.FAILED, f"{why}: {ev.error}", media_info=fetched)
        return True

    def send_timed_out(self) -> bool:
        """The `processing` timer: True if the send in flight has waited too long."""
        # One timer rides along many sends (rescheduling it per send made every send take
        # the scheduler's lock): it checks the send in flight now, whichever that is.
        if self.in_flight is None:
            return False
        ctx = self.ctx
        if self.awaiting:  # not sent yet: the send has not started to take long
            ctx.timers.schedule("processing", ctx.cfg.queue.processing_timeout)
            return False
        allowed = ctx.cfg.queue.processing_timeout
        if self.in_flight.record.media is not None:
            # The driver fetches the media first, for up to [media] timeouts in real seconds.
            m = ctx.cfg.media
            allowed += (m.connect_timeout + m.timeout) / ctx.cfg.daemon.time_scale
        left = self.in_flight_at + allowed - ctx.clock.now()
        if left > 0:
            ctx.timers.schedule("processing", left)
            return False
        ctx.log.warning("send of {} timed out", self.in_flight.record.message_id)
        return True

    def requeue_in_flight(self, reason: str) -> None:
        """The session closed with a send in flight: its outcome is unknown, so it goes back
        to the head of the queue, same id, no retry consumed."""
        self._unprepare(f"session closed: {reason}")
        q = self.in_flight
        if q is None:
            return
        # Handed to the driver: it may have left. Still waiting for its `sending` write: it
        # did not, and what was known of it before stays so.
        handed = not self.awaiting
        self.in_flight = None
        self.awaiting = 0  # a commit of its `sending` write that comes later is stale
        if handed:
            q.unknown = True
        self.queue.appendleft(q)
        self.queued_ids.add(q.record.message_id)
        self.saver.write(
            StatusWrite(
                q.record.message_id,
                M.QUEUED,
                f"session closed: {reason}",
                only_if=frozenset({M.SENDING}),
                outcome_unknown=True if handed else None,
            )
        )
        self.ctx.emit_message(q.record.message_id, M.QUEUED, f"session closed: {reason}")

    def _finish(
        self,
        rec: MessageRecord,
        status: M,
        reason: str,
        media_info: Mapping[str, Any] | None = None,
    ) -> None:
        if status == M.FAILED:
            self.failed += 1
        if status == M.EXPIRED:
            # Posted, nobody told of a failure: an `expired` lost to the disk costs nothing,
            # the message is still queued after a restart and expires again before any send.
            self.saver.forget(rec.message_id)
            self.ctx.deps.store.set_status(
                rec.message_id,
                status,
                attempts=rec.attempts,
                error=rec.last_error,
                reason=reason,
                owner=self.ctx.id,
            )
        else:
            self.saver.write(
                StatusWrite(
                    rec.message_id,
                    status,
                    reason,
                    attempts=rec.attempts,
                    error=rec.last_error,
                    media_info=media_info,
                )
            )
        self.ctx.emit_message(
            rec.message_id, status, reason, attempts=rec.attempts, extra=_flags(rec)
        )

    # ------------------------------------------------------------------ operator commands

    def cancel(self, message_id: str, untried_only: bool = False) -> str:
        ctx = self.ctx
        if self.in_flight is not None and self.in_flight.record.message_id == message_id:
            raise InvalidState(f"message {message_id} is being sent and cannot be cancelled")
        if untried_only and self.tried(message_id):
            # A campaign takes back only messages that never reached the driver: one tried
            # before may have reached the phone (lost ack), and its recipient is fed again
            # under a new message id, which no network would recognise as a resend.
            raise InvalidState(f"message {message_id} was tried already")
        if self.prepared is not None and self.prepared.write.message_id == message_id:
            self._unprepare("cancel requested")  # committed before the cancel below
        if message_id in self.queued_ids:
            self.drop(message_id)
        ok = ctx.deps.store.update_message(
            message_id, M.CANCELLED, reason="cancelled by client", only_if={M.QUEUED}
        ).result()
        if not ok:
            rec = ctx.deps.store.get_message(message_id)
            status = rec.status if rec else "unknown"
            raise InvalidState(f"message {message_id} is {status} and cannot be cancelled")
        ctx.emit_message(message_id, M.CANCELLED, "cancelled by client")
        ctx.publish_snapshot()
        return str(M.CANCELLED)

    def tried(self, message_id: str) -> bool:
        q = next((q for q in self.queue if q.record.message_id == message_id), None)
        if q is not None:
            return q.record.attempts > 0 or q.unknown
        rec = self.ctx.deps.store.get_message(message_id)
        return rec is None or rec.attempts > 0 or rec.outcome_unknown

    def purge(self, status: str) -> int:
        ctx = self.ctx
        self._unprepare("purge requested")  # a message written ahead is not being sent
        ids = ctx.deps.store.cancel_pending(ctx.id, status=status, reason="purged by operator")
        for mid in ids:
            self.drop(mid)
            ctx.emit_message(mid, M.CANCELLED, "purged by operator")
        ctx.publish_snapshot()
        return len(ids)

    def retry_failed(self, message_ids: list[str] | None) -> list[str]:
        """Failed messages back in the queue (the caller pumps)."""
        ctx = self.ctx
        ids = ctx.deps.store.requeue_failed(ctx.id, message_ids, max_queue=ctx.cfg.queue.max_size)
        for mid in ids:
            rec = ctx.deps.store.get_message(mid)
            if rec is not None:
                self.add(rec)
                ctx.emit_message(mid, M.QUEUED, "retried by operator")
        return ids


def _sending(message_id: str, doubled: bool) -> StatusWrite:
    """The `sending` write of a message about to go; a resend after an unknown outcome on a
    network that may deliver it twice says so (message.get's possible_duplicate)."""
    if doubled:
        why = "resending after an unknown outcome: possible duplicate"
        return StatusWrite(message_id, M.SENDING, why, possible_duplicate=True)
    return StatusWrite(message_id, M.SENDING, "sending")


def _flags(rec: MessageRecord) -> dict[str, bool] | None:
    """What a message event adds for a possibly doubled message (nothing otherwise)."""
    return {"possible_duplicate": True} if rec.possible_duplicate else None


def _expired(rec: MessageRecord, wall: float) -> bool:
    return rec.expires_at is not None and rec.expires_at <= wall
