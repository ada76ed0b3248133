"""Writing the outbox: accepting a message, its status changes, and the bulk moves (recover at
start-up, purge, operator retry). Every status change adds a history row (see history.py) and
keeps the writer's pending counters in step with the rows. A message is stamped with its
instance's incarnation when accepted, and the bulk moves touch the instance's own messages only
(see owner.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from waz_actors.errors import BadRequest, Exists, InvalidState, NotFound, QueueFull
from waz_actors.store.checks import (
    PENDING,
    need_non_negative,
    need_number,
    need_status,
    need_str,
    to_json,
)
from waz_actors.store.history import add_history, cancel_where, mark
from waz_actors.store.instances import not_found
from waz_actors.store.message_reads import MSG_COLUMNS, SELECT_MSG
from waz_actors.store.owner import OWNED, OWNED_ROW, current, owned_args
from waz_actors.store.records import MessageRecord
from waz_actors.store.sql import Conn, Database, IntegrityError
from waz_actors.store.webhooks import emit_status
from waz_actors.store.writer import Tx
from waz_actors.types import FINAL_STATUSES, MessageStatus

QUEUED = MessageStatus.QUEUED.value
RECEIPT_COLUMN = {"delivered": "delivered_at", "read": "read_at"}
RECEIPT_KINDS = tuple(RECEIPT_COLUMN)


def allowed(current: str, new: str) -> bool:
    """A final status is final (no resend after `sent`), except an operator's retry of failed."""
    if current not in FINAL_STATUSES:
        return True
    return current == MessageStatus.FAILED and new == MessageStatus.QUEUED


# -- enqueue, step by step -------------------------------------------------------------------


def check_message(rec: MessageRecord, max_queue: int) -> None:
    need_str(rec.message_id, "message_id")
    need_str(rec.instance_id, "instance_id")
    need_str(rec.tenant, "tenant")
    need_str(rec.to, "to")
    if rec.text is not None and not isinstance(rec.text, str):
        raise BadRequest("text: expected a string", {"field": "text"})
    if rec.media is not None and not isinstance(rec.media, dict):
        raise BadRequest("media: expected a map", {"field": "media"})
    if rec.text is None and rec.media is None:
        raise BadRequest("a message needs text or media", {"field": "text"})
    need_str(rec.idempotency_key, "idempotency_key", optional=True)
    need_number(rec.created_at, "created_at")
    need_number(rec.expires_at, "expires_at", optional=True)
    need_non_negative(max_queue, "max_queue")


def as_queued(rec: MessageRecord) -> MessageRecord:
    """The record as stored: whatever the caller put in status, attempts, error, wa_id and
    updated_at, a new message starts queued and untried."""
    fresh = (
        rec.status == QUEUED
        and rec.attempts == 0
        and rec.last_error is None
        and rec.wa_id is None
        and rec.updated_at == rec.created_at
    )
    if fresh:
        return rec
    return dataclasses.replace(
        rec, status=QUEUED, attempts=0, last_error=None, wa_id=None, updated_at=rec.created_at
    )


def earlier_with_key(c: Conn, rec: MessageRecord) -> MessageRecord | None:
    """The message the tenant already sent with this idempotency key, if any."""
    if rec.idempotency_key is None:
        return None
    row = c.execute(
        f"{SELECT_MSG} WHERE tenant = ? AND idempotency_key = ?",
        (rec.tenant, rec.idempotency_key),
    ).fetchone()
    return None if row is None else MessageRecord.from_row(row)


def need_room(tx: Tx, instance_id: str, max_queue: int) -> None:
    # tx.pending counts this batch's earlier operations too: the cap holds within a batch.
    pending = tx.pending(instance_id)
    if pending >= max_queue:
        raise QueueFull(
            f"instance {instance_id} has {pending} pending messages (max {max_queue})",
            {"instance_id": instance_id, "max_queue": max_queue},
        )


def owner_of(c: Conn, rec: MessageRecord) -> int:
    """Inside a write: the incarnation the message joins. NotFound unless the instance exists
    and is the message's tenant's (it may have been deleted and created again by another
    tenant since the caller looked)."""
    found = current(c, rec.instance_id)
    if found is None or found[1] != rec.tenant:
        raise not_found(rec.instance_id)
    return found[0]


def insert_queued(c: Conn, rec: MessageRecord, media: str | None, incarnation: int) -> None:
    """The message row and its first history row ("accepted"); Exists for a reused id."""
    try:
        c.execute(
            f"INSERT INTO messages ({MSG_COLUMNS}, incarnation) VALUES"
            " (?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?, ?, ?, ?)",
            (
                rec.message_id,
                rec.instance_id,
                rec.tenant,
                rec.to,
                rec.text,
                media,
                rec.status,
                rec.idempotency_key,
                rec.created_at,
                rec.updated_at,
                rec.expires_at,
                incarnation,
            ),
        )
    except IntegrityError:
        raise Exists(
            f"message {rec.message_id} already exists", {"message_id": rec.message_id}
        ) from None
    add_history(c, rec.message_id, rec.status, rec.created_at, "accepted")


# -- a store shared by several daemons (PostgreSQL) -------------------------------------------


def is_shared(conn: Conn) -> bool:
    """True on PostgreSQL, where other daemons write the same tables (store/pg.py PgConn)."""
    return bool(getattr(conn, "shared", False))


def resync_pending(tx: Tx, instance_id: str) -> None:
    """Set this writer's pending counter of the instance to what the database holds.

    Other nodes accept messages for the instance and its owner sends them, so on a shared store
    the in-memory counter (only this daemon's own writes) drifts. Read in the writing
    transaction, before queue.max_size is checked or the queue is loaded: one indexed count."""
    row = tx.conn.execute(
        f"SELECT count(*) FROM messages m WHERE m.instance_id = ? AND m.status IN (?, ?)"
        f" AND {OWNED_ROW}",
        (instance_id, *PENDING),
    ).fetchone()
    tx.adjust(instance_id, int(row[0]) - tx.pending(instance_id))


def owner_and_pending(tx: Tx, rec: MessageRecord) -> int:
    """owner_of and resync_pending in one statement (one round trip on the shared store)."""
    row = tx.conn.execute(
        "SELECT i.incarnation, i.tenant, (SELECT count(*) FROM messages m"
        " WHERE m.instance_id = i.instance_id AND m.status IN (?, ?)"
        " AND m.incarnation = i.incarnation AND m.tenant = i.tenant)"
        " FROM instances i WHERE i.instance_id = ?",
        (*PENDING, rec.instance_id),
    ).fetchone()
    if row is None or row[1] != rec.tenant:
        raise not_found(rec.instance_id)
    tx.adjust(rec.instance_id, int(row[2]) - tx.pending(rec.instance_id))
    return int(row[0])


# The owner LISTENs on waz_node_<node id> (cluster/wake.py), told only if this transaction
# commits; no lease, nobody. Not the accepting node (`owner <> ?`: Fleet.submit tells its
# instance in memory). "<instance_id> <message_id>": the owner reads that row alone; no id (a
# batch), it reads its queue.
_WAKE = (
    "SELECT pg_notify(? || owner, instance_id || coalesce(' ' || ?::text, '')) FROM leases"
    " WHERE instance_id = ? AND owner IS NOT NULL AND owner <> ?"
)


def fence(conn: Conn, instance_id: str, epoch: int | None) -> None:
    """Refuse the write (SQLSTATE WZ409, cluster/schema.py waz_fence) unless `epoch` is the
    current epoch of a held, unexpired lease of the instance; no epoch: not ours, refused."""
    # Not read: pipelined, a refusal raises at the next sync and the batch reruns unpipelined.
    conn.execute("SELECT waz_fence(?, ?)", (instance_id, -1 if epoch is None else epoch))


def wake_owner(
    conn: Conn, instance_id: str, message_id: str | None = None, accepted_by: str | None = None
) -> None:
    """Tell the instance's owner of `message_id` (queued; None: of several, it reads its queue)
    unless the owner is `accepted_by`, the node writing this."""
    from waz_actors.cluster.wake import CHANNEL_PREFIX

    conn.execute(_WAKE, (CHANNEL_PREFIX, message_id, instance_id, accepted_by or ""))


# -- the table family ------------------------------------------------------------------------


class Messages:
    def __init__(self, db: Database, wall: Callable[[], float]) -> None:
        self._db = db
        self._wall = wall
        self.node_id: str | None = None  # clustered: never woken for its own sends (_WAKE)

    def enqueue(self, rec: MessageRecord, *, max_queue: int) -> Future[tuple[MessageRecord, bool]]:
        check_message(rec, max_queue)
        media = to_json(rec.media, "media") if rec.media is not None else None
        stored = as_queued(rec)

        def op(tx: Tx) -> tuple[MessageRecord, bool]:
            earlier = earlier_with_key(tx.conn, rec)
            if earlier is not None:
                return earlier, False
            shared = is_shared(tx.conn)
            incarnation = owner_and_pending(tx, rec) if shared else owner_of(tx.conn, rec)
            need_room(tx, rec.instance_id, max_queue)
            insert_queued(tx.conn, stored, media, incarnation)
            tx.adjust(rec.instance_id, 1)
            if shared:
                wake_owner(tx.conn, rec.instance_id, rec.message_id, self.node_id)
            if self._db.tap is not None:
                written = {
                    "instance_id": stored.instance_id,
                    "tenant": stored.tenant,
                    "recipient": stored.to,
                    "attempts": stored.attempts,
                    "wa_id": stored.wa_id,
                    "last_error": stored.last_error,
                    "possible_duplicate": stored.possible_duplicate,
                }
                emit_status(self._db.tap, tx, rec.message_id, "queued", "accepted", written)
            return stored, True

        return self._db.writer.submit(op)

    def update_message(
        self,
        message_id: str,
        status: str,
        *,
        attempts: int | None = None,
        error: str | None = None,
        wa_id: str | None = None,
        reason: str | None = None,
        only_if: Iterable[str] | None = None,
        media_info: Mapping[str, Any] | None = None,
        possible_duplicate: bool | None = None,
        outcome_unknown: bool | None = None,
        owner: str | None = None,
    ) -> Future[bool]:
        return self._db.writer.submit(
            self.status_op(
                message_id,
                status,
                attempts=attempts,
                error=error,
                wa_id=wa_id,
                reason=reason,
                only_if=only_if,
                media_info=media_info,
                possible_duplicate=possible_duplicate,
                outcome_unknown=outcome_unknown,
                owner=owner,
            ),
            owner=owner,
        )

    def set_status(
        self, message_id: str, status: str, *, owner: str | None = None, **changes: Any
    ) -> None:
        self._db.writer.post(
            self.status_op(message_id, status, owner=owner, **changes), owner=owner
        )

    def status_op(
        self,
        message_id: str,
        status: str,
        *,
        attempts: int | None = None,
        error: str | None = None,
        wa_id: str | None = None,
        reason: str | None = None,
        only_if: Iterable[str] | None = None,
        media_info: Mapping[str, Any] | None = None,
        possible_duplicate: bool | None = None,
        outcome_unknown: bool | None = None,
        owner: str | None = None,
    ) -> Callable[[Tx], bool]:
        """The write of one status change; its arguments are checked here, before queueing.

        possible_duplicate only ever turns on (a message once possibly doubled stays so);
        outcome_unknown is set or cleared when given. `owner`: the instance whose owner writes
        this (its send path), which the message must belong to; the writer fences it."""
        new = need_status(status)
        guard = None if only_if is None else {need_status(s, "only_if") for s in only_if}
        if attempts is not None:
            need_non_negative(attempts, "attempts")
        now = self._wall()
        info = to_json(dict(media_info), "media_info") if media_info is not None else None

        def op(tx: Tx) -> bool:
            c = tx.conn
            row = c.execute(
                "SELECT instance_id, status, tenant, recipient, attempts, wa_id, last_error,"
                f" possible_duplicate, {OWNED_ROW} AS owned FROM messages m"
                " WHERE message_id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"message {message_id} not found", {"message_id": message_id})
            if owner is not None and row["instance_id"] != owner:
                raise InvalidState(
                    f"message {message_id} is not instance {owner}'s",
                    {"message_id": message_id, "instance_id": owner},
                )
            current = row["status"]
            if guard is not None and current not in guard:
                return False
            if not allowed(current, new):
                raise InvalidState(
                    f"message {message_id} is {current} and cannot become {new}",
                    {"message_id": message_id, "status": current},
                )
            if new in PENDING and not row["owned"]:
                # A failed message of a deleted instance: queueing it again would hand it to
                # whoever reuses the id.
                raise InvalidState(
                    f"message {message_id} belongs to a deleted instance",
                    {"message_id": message_id, "status": current},
                )
            fencing = self._db.writer.fencing
            if new == MessageStatus.SENDING and owner is None and fencing is not None:
                # A send started by a caller that did not name the owner: fenced all the same.
                fence(c, row["instance_id"], fencing.epoch_of(row["instance_id"]))
            c.execute(
                "UPDATE messages SET status = ?, attempts = coalesce(?, attempts),"
                " last_error = coalesce(?, last_error), wa_id = coalesce(?, wa_id),"
                " media_info = coalesce(?, media_info),"
                " possible_duplicate = CASE WHEN ? = 1 THEN 1 ELSE possible_duplicate END,"
                " outcome_unknown = coalesce(?, outcome_unknown),"
                " updated_at = ? WHERE message_id = ?",
                (
                    new,
                    attempts,
                    error,
                    wa_id,
                    info,
                    None if possible_duplicate is None else int(possible_duplicate),
                    None if outcome_unknown is None else int(outcome_unknown),
                    now,
                    message_id,
                ),
            )
            add_history(c, message_id, new, now, reason)
            if self._db.tap is not None:
                # the row as the UPDATE above left it (coalesce: a None keeps the old value)
                written = {
                    "instance_id": row["instance_id"],
                    "tenant": row["tenant"],
                    "recipient": row["recipient"],
                    "attempts": row["attempts"] if attempts is None else attempts,
                    "wa_id": row["wa_id"] if wa_id is None else wa_id,
                    "last_error": row["last_error"] if error is None else error,
                    "possible_duplicate": bool(possible_duplicate or row["possible_duplicate"]),
                }
                emit_status(self._db.tap, tx, message_id, new, reason, written)
            if row["owned"]:  # only the instance's own messages are counted
                tx.adjust(row["instance_id"], (new in PENDING) - (current in PENDING))
            return True

        return op

    def record_receipt(self, message_id: str, kind: str, at: float) -> Future[bool]:
        """A delivered/read receipt's wall time (the first one counts; read implies delivered).
        False if the message is unknown or already had that receipt."""
        if kind not in RECEIPT_KINDS:
            raise BadRequest(f"kind: unknown receipt kind {kind!r}", {"field": "kind"})
        need_number(at, "at")

        def op(tx: Tx) -> bool:
            sets = "read_at = coalesce(read_at, ?), " if kind == "read" else ""
            cur = tx.conn.execute(
                f"UPDATE messages SET {sets}delivered_at = coalesce(delivered_at, ?)"
                f" WHERE message_id = ? AND {RECEIPT_COLUMN[kind]} IS NULL",
                ((at, at, message_id) if kind == "read" else (at, message_id)),
            )
            if cur.rowcount > 0 and self._db.tap is not None:
                emit_status(self._db.tap, tx, message_id, kind, f"{kind} receipt")
            return cur.rowcount > 0

        return self._db.writer.submit(op)

    def recover_sending(self, instance_id: str | None = None) -> int:
        """Every instance's (one daemon's start-up), or one instance's (a cluster node that
        just took its lease: the other instances' sends are in flight on other nodes)."""
        # One instance: the new owner's first write, fenced (a node whose lease is gone again
        # requeues nothing, StaleEpoch, and does not start the instance).
        return self._db.writer.call(self.recover_op(instance_id), owner=instance_id)

    def recover_op(self, instance_id: str | None) -> Callable[[Tx], int]:
        now = self._wall()

        def op(tx: Tx) -> int:
            only = "" if instance_id is None else " AND m.instance_id = ?"
            rows = tx.conn.execute(
                f"SELECT message_id, status, {OWNED_ROW} FROM messages m"
                f" WHERE status IN (?, ?){only}",
                PENDING if instance_id is None else (*PENDING, instance_id),
            ).fetchall()
            if instance_id is not None and is_shared(tx.conn):
                resync_pending(tx, instance_id)
            # A pending message no instance owns is cancelled, never loaded into a new instance
            # that reuses the id. None should exist (a delete, a hand-over to another tenant and
            # the v2 migration cancel them); this is the last guard. It was never counted, so
            # the counters do not move.
            orphans = [r[0] for r in rows if not r[2]]
            mark(tx.conn, orphans, "cancelled", "instance deleted", now)
            # sending -> queued: both pending, so the counters do not move.
            ids = [r[0] for r in rows if r[2] and r[1] == "sending"]
            mark(tx.conn, ids, "queued", "recovered after restart", now)
            # The daemon stopped mid-send: whether those left is unknown (see Outbox.pump).
            tx.conn.executemany(
                "UPDATE messages SET outcome_unknown = 1 WHERE message_id = ?", [(m,) for m in ids]
            )
            return len(ids)

        return op

    def cancel_pending(
        self, instance_id: str, *, status: str = "queued", reason: str = "purged"
    ) -> list[str]:
        if status not in PENDING:
            raise BadRequest(
                f"status: only queued or sending messages can be cancelled, got {status!r}",
                {"field": "status"},
            )
        now = self._wall()
        statuses = (status,)
        return self._db.writer.call(lambda tx: cancel_where(tx, instance_id, statuses, reason, now))

    def requeue_failed(
        self, instance_id: str, message_ids: list[str] | None, *, max_queue: int
    ) -> list[str]:
        if message_ids is not None and (
            not isinstance(message_ids, list | tuple)
            or not all(isinstance(m, str) for m in message_ids)
        ):
            raise BadRequest("message_ids: expected a list of strings", {"field": "message_ids"})
        now = self._wall()

        def op(tx: Tx) -> list[str]:
            c = tx.conn
            rows = c.execute(
                f"SELECT message_id FROM messages WHERE {OWNED} AND status = 'failed'"
                " ORDER BY created_at, seq",
                owned_args(instance_id),
            ).fetchall()
            ids = [r[0] for r in rows]
            if message_ids is not None:
                wanted = set(message_ids)
                ids = [m for m in ids if m in wanted]
            room = max(0, max_queue - tx.pending(instance_id))
            ids = ids[:room]
            c.executemany(
                "UPDATE messages SET attempts = 0 WHERE message_id = ?", [(m,) for m in ids]
            )
            mark(c, ids, "queued", "retried by operator", now)
            tx.adjust(instance_id, len(ids))
            return ids

        return self._db.writer.call(op)


__all__ = ["Messages", "allowed", "as_queued", "check_message"]
