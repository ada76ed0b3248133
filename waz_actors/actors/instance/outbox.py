"""The instance's side of the durable queue: what waits, what is in flight, and send results.

The store holds the truth; this is the in-memory order of the instance's queued messages. A
message goes out only while the instance is online, idle and the pacer allows it, one at a
time. Only a send that reached WhatsApp and failed consumes a retry (invariant 4).

A send whose outcome is unknown (the session closed or timed out with it in flight, the host died,
the daemon stopped) goes again with the same id. On a driver whose network drops such a second
copy (`dedup_resends`) that is harmless; on one that does not, queue.resend_unknown decides:
"always" resends it marked possible_duplicate, "never" ends it in status `unknown`.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from waz_actors.actors.instance.context import Context
from waz_actors.drivers import base as driver
from waz_actors.errors import InvalidState
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
        self.in_flight_at = 0.0  # daemon time the send in flight started
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

    def add(self, rec: MessageRecord) -> None:
        if rec.message_id in self.queued_ids:
            return
        if self.in_flight is not None and self.in_flight.record.message_id == rec.message_id:
            return
        self.queue.append(Queued(rec, unknown=rec.outcome_unknown))
        self.queued_ids.add(rec.message_id)

    def drop(self, message_id: str) -> None:
        self.queued_ids.discard(message_id)
        self.queue = deque(q for q in self.queue if q.record.message_id != message_id)

    # ------------------------------------------------------------------ sending

    def pump(self, session: driver.Driver | None) -> None:
        """Send the next message if online, idle and the pacer allows it."""
        ctx = self.ctx
        if (
            ctx.state != S.ONLINE
            or self.in_flight is not None
            or session is None
            or self.draining is not None
            or not self.queue
        ):
            return
        now = ctx.clock.now()
        wall = ctx.clock.wall()
        # Expired messages leave the queue as expired, whatever their position.
        while self.queue and _expired(self.queue[0].record, wall):
            q = self.queue.popleft()
            self.queued_ids.discard(q.record.message_id)
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
            # At most once: the operator prefers a missing message to a second copy.
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
        self.in_flight_at = now
        rec = ready.record
        if doubled:
            rec = ready.record = dataclasses.replace(rec, possible_duplicate=True)
            why = "resending after an unknown outcome: possible duplicate"
            ctx.log.warning("{}: {}", rec.message_id, why)
            ctx.deps.store.set_status(
                rec.message_id, M.SENDING, reason=why, possible_duplicate=True
            )
            ctx.emit_message(rec.message_id, M.SENDING, why, extra={"possible_duplicate": True})
        else:
            ctx.deps.store.set_status(rec.message_id, M.SENDING, reason="sending")
            ctx.emit_message(rec.message_id, M.SENDING, "sending", extra=_flags(rec))
        if not ctx.timers.pending("processing"):
            ctx.timers.schedule("processing", ctx.cfg.queue.processing_timeout)
        session.send(
            driver.OutgoingMessage(
                message_id=rec.message_id, to=rec.to, text=rec.text, media=rec.media
            )
        )
        ctx.publish_snapshot(light=True)

    def on_send_result(self, ev: driver.SendResult) -> bool:
        """Settle the send in flight; False for a late result of one already settled."""
        ctx = self.ctx
        q = self.in_flight
        if q is None or q.record.message_id != ev.message_id:
            ctx.log.debug("late send result for {}", ev.message_id)
            return False
        self.in_flight = None
        now = ctx.clock.now()
        rec = q.record
        attempts = rec.attempts + 1
        store = ctx.deps.store
        # What the driver fetched goes to the store with the status (message.get shows it).
        fetched: dict[str, Any] = {"media_info": dict(ev.media)} if ev.media else {}
        if ev.ok:
            self.sent += 1
            self.success.record(now, True)
            store.set_status(
                rec.message_id,
                M.SENT,
                attempts=attempts,
                wa_id=ev.wa_id,
                reason="sent",
                outcome_unknown=False,
                **fetched,
            )
            ctx.emit_message(
                rec.message_id,
                M.SENT,
                "sent",
                attempts=attempts,
                wa_id=ev.wa_id,
                extra=_flags(rec),
            )
        elif self.retry.should_retry(attempts, permanent=ev.permanent):
            self.success.record(now, False)
            delay = self.retry.delay(attempts)
            rec = dataclasses.replace(rec, attempts=attempts, last_error=ev.error)
            # A driver that lost the answer says so ("outcome unknown: ..."): it may have left.
            unknown = (ev.error or "").startswith("outcome unknown")
            self.queue.appendleft(Queued(rec, not_before=now + delay, unknown=unknown))
            self.queued_ids.add(rec.message_id)
            reason = f"send failed, retry in {delay:.0f} s: {ev.error}"
            store.set_status(
                rec.message_id,
                M.QUEUED,
                attempts=attempts,
                error=ev.error,
                reason=reason,
                outcome_unknown=unknown,
                **fetched,
            )
            ctx.emit_message(rec.message_id, M.QUEUED, reason, attempts=attempts)
        else:
            self.success.record(now, False)
            why = "permanent error" if ev.permanent else "retries exhausted"
            rec = dataclasses.replace(rec, attempts=attempts, last_error=ev.error)
            self._finish(rec, M.FAILED, f"{why}: {ev.error}", **fetched)
        return True

    def send_timed_out(self) -> bool:
        """The `processing` timer: True if the send in flight has waited too long."""
        # One timer rides along many sends (rescheduling it per send made every send take
        # the scheduler's lock): it checks the send in flight now, whichever that is.
        if self.in_flight is None:
            return False
        ctx = self.ctx
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
        q = self.in_flight
        if q is None:
            return
        self.in_flight = None
        q.unknown = True
        self.queue.appendleft(q)
        self.queued_ids.add(q.record.message_id)
        self.ctx.deps.store.set_status(
            q.record.message_id,
            M.QUEUED,
            reason=f"session closed: {reason}",
            only_if={M.SENDING},
            outcome_unknown=True,
        )
        self.ctx.emit_message(q.record.message_id, M.QUEUED, f"session closed: {reason}")

    def _finish(self, rec: MessageRecord, status: M, reason: str, **changes: Any) -> None:
        if status == M.FAILED:
            self.failed += 1
        self.ctx.deps.store.set_status(
            rec.message_id,
            status,
            attempts=rec.attempts,
            error=rec.last_error,
            reason=reason,
            **changes,
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


def _flags(rec: MessageRecord) -> dict[str, bool] | None:
    """What a message event adds for a possibly doubled message (nothing otherwise)."""
    return {"possible_duplicate": True} if rec.possible_duplicate else None


def _expired(rec: MessageRecord, wall: float) -> bool:
    return rec.expires_at is not None and rec.expires_at <= wall
