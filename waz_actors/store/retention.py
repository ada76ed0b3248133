"""Retention: what is old enough to go, and the prune that deletes it in small batches.

Only what is settled goes: final messages (sent, failed, cancelled, expired, unknown) untouched for
longer than the retention age, with their history; events and received messages (the inbox)
older than it; webhook deliveries that are done (delivered, dead or failed) with no attempt
for longer than it, and the bodies of events older than it that no delivery refers to any
more; and the idempotency
keys of final messages accepted longer ago than the keys' age (the message stays, but a new
send with the same key is a new message). A pending message is never touched.

Each batch is its own short write through the writer, so a send queued meanwhile waits for one
batch at most, never for the whole prune. Rows are picked on a reader and checked again inside
the write: a failed message retried in between is not deleted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

from waz_actors.errors import ShuttingDown
from waz_actors.store.checks import need_number, need_positive
from waz_actors.store.sql import Conn, Database, has_table
from waz_actors.store.writer import Tx

if TYPE_CHECKING:
    from waz_actors.store.api import StoreAPI

FINAL = ("cancelled", "expired", "failed", "sent", "unknown")
KINDS = (
    "messages",
    "history",
    "events",
    "idempotency_keys",
    "inbox",
    "webhook_deliveries",
    "webhook_events",
)
BATCH_MAX = 5000  # rows per write at most (and SQL parameters per statement)
DAY = 86400.0

_F = ", ".join("?" * len(FINAL))
_OLD_MESSAGE = f"status IN ({_F}) AND updated_at < ?"
_OLD_KEY = f"idempotency_key IS NOT NULL AND status IN ({_F}) AND created_at < ?"
# A pending delivery is never touched; a redelivered one is pending again (checked in the write).
_OLD_DELIVERY = "status IN ('delivered', 'dead', 'failed') AND coalesce(last_at, created_at) < ?"
# An event the delivery worker has not fanned out yet stays, however old (store/webhook_outbox.py);
# so does the newest, whose seq (SQLite's rowid) keeps the next one numbered above the cursor.
_FANNED_OUT = (
    "seq <= coalesce((SELECT seq FROM webhook_cursor WHERE name = 'fanout'), 0)"
    " AND seq < (SELECT max(seq) FROM webhook_events)"
)


def cutoffs(
    now: float, retention_days: float, idempotency_days: float
) -> tuple[float | None, float | None]:
    """Wall times before which rows go: (messages and events, idempotency keys); None keeps
    that kind for ever (a setting of 0 days)."""
    rows = now - retention_days * DAY if retention_days > 0 else None
    keys = now - idempotency_days * DAY if idempotency_days > 0 else None
    return rows, keys


def count_prunable(
    conn: Conn, older_than: float | None, keys_older_than: float | None
) -> dict[str, int]:
    """What a prune with these cutoffs would delete, per kind; reads only (a dry run)."""
    out = dict.fromkeys(KINDS, 0)

    def one(sql: str, *args: object) -> int:
        return int(conn.execute(sql, args).fetchone()[0])

    if older_than is not None:
        old = (*FINAL, older_than)
        out["messages"] = one(f"SELECT count(*) FROM messages WHERE {_OLD_MESSAGE}", *old)
        out["history"] = one(
            "SELECT count(*) FROM message_history WHERE message_id IN"
            f" (SELECT message_id FROM messages WHERE {_OLD_MESSAGE})",
            *old,
        )
        out["events"] = one("SELECT count(*) FROM events WHERE time < ?", older_than)
        # a dry run reads an unmigrated database as it is: it may predate the inbox
        if has_table(conn, "inbox"):
            out["inbox"] = one("SELECT count(*) FROM inbox WHERE received_at < ?", older_than)
        if has_table(conn, "webhook_deliveries"):
            out["webhook_deliveries"] = one(
                f"SELECT count(*) FROM webhook_deliveries WHERE {_OLD_DELIVERY}", older_than
            )
            # bodies whose deliveries all go too (or had none left)
            out["webhook_events"] = one(
                f"SELECT count(*) FROM webhook_events e WHERE time < ? AND {_FANNED_OUT}"
                " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d"
                f" WHERE d.event_id = e.event_id AND NOT ({_OLD_DELIVERY}))",
                older_than,
                older_than,
            )
    if keys_older_than is not None:
        # keys of messages deleted anyway are not counted twice
        gone = "" if older_than is None else " AND updated_at >= ?"
        args = () if older_than is None else (older_than,)
        out["idempotency_keys"] = one(
            f"SELECT count(*) FROM messages WHERE {_OLD_KEY}{gone}", *FINAL, keys_older_than, *args
        )
    return out


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class Retention:
    """The store's prune (see Store.prune)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def prune(
        self,
        older_than: float | None,
        *,
        keys_older_than: float | None = None,
        batch: int = 500,
        dry_run: bool = False,
        stop_when: Callable[[], bool] | None = None,
    ) -> dict[str, int]:
        need_number(older_than, "older_than", optional=True)
        need_number(keys_older_than, "keys_older_than", optional=True)
        need_positive(batch, "batch")
        batch = min(batch, BATCH_MAX)
        if dry_run:
            with self._db.snapshot() as conn:
                return count_prunable(conn, older_than, keys_older_than)
        stop = stop_when or (lambda: False)
        out = dict.fromkeys(KINDS, 0)
        if older_than is not None:
            self._messages(older_than, batch, stop, out)
            while not stop():
                n = self._db.writer.call(_delete_events(older_than, batch))
                out["events"] += n
                if n < batch:
                    break
            while not stop():
                n = self._db.writer.call(_delete_inbox(older_than, batch))
                out["inbox"] += n
                if n < batch:
                    break
            self._webhooks(older_than, batch, stop, out)
        if keys_older_than is not None:
            self._keys(keys_older_than, batch, stop, out)
        return out

    def _messages(
        self, older_than: float, batch: int, stop: Callable[[], bool], out: dict[str, int]
    ) -> None:
        while not stop():
            with self._db.read() as conn:
                seqs = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT seq FROM messages WHERE {_OLD_MESSAGE} LIMIT ?",
                        (*FINAL, older_than, batch),
                    )
                ]
            if not seqs:
                return
            messages, history = self._db.writer.call(_delete_messages(seqs, older_than))
            out["messages"] += messages
            out["history"] += history
            if len(seqs) < batch:
                return

    def _webhooks(
        self, older_than: float, batch: int, stop: Callable[[], bool], out: dict[str, int]
    ) -> None:
        with self._db.read() as conn:
            if not has_table(conn, "webhook_deliveries"):
                return  # a store opened with older migrations (tests, tools)
        after = 0  # a cursor on seq (the primary key): one pass over the outbox
        while not stop():
            with self._db.read() as conn:
                seqs = [
                    r[0]
                    for r in conn.execute(
                        "SELECT seq FROM webhook_deliveries WHERE seq > ? AND"
                        f" {_OLD_DELIVERY} ORDER BY seq LIMIT ?",
                        (after, older_than, batch),
                    )
                ]
            if not seqs:
                break
            out["webhook_deliveries"] += self._db.writer.call(_delete_deliveries(seqs, older_than))
            after = seqs[-1]
            if len(seqs) < batch:
                break
        # Event ids grow with time (policy/webhooks.new_event_id), and deliveries only ever get
        # new events: an old event below the smallest id any delivery still refers to has none.
        # One scan of the outbox per prune instead of a lookup per event (it has no index on
        # event_id: one more index to write on the send path). The worker may fan out an old
        # event after this read (it was stopped a while): the delete checks the deliveries
        # written since, above `since` by the primary key (fan-outs are serialized by the
        # cursor row, so a row committed later has a higher seq on PostgreSQL too).
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT min(event_id), coalesce(max(seq), 0) FROM webhook_deliveries"
            ).fetchone()
        below, since = (None, 0) if row is None else (row[0], int(row[1]))
        while not stop():
            n = self._db.writer.call(_delete_webhook_events(older_than, below, since, batch))
            out["webhook_events"] += n
            if n < batch:
                break

    def _keys(
        self, keys_older_than: float, batch: int, stop: Callable[[], bool], out: dict[str, int]
    ) -> None:
        after = 0  # a cursor on seq: each pass reads the table once, whatever its size
        while not stop():
            with self._db.read() as conn:
                seqs = [
                    r[0]
                    for r in conn.execute(
                        f"SELECT seq FROM messages WHERE seq > ? AND {_OLD_KEY} ORDER BY seq"
                        " LIMIT ?",
                        (after, *FINAL, keys_older_than, batch),
                    )
                ]
            if not seqs:
                return
            out["idempotency_keys"] += self._db.writer.call(_clear_keys(seqs, keys_older_than))
            after = seqs[-1]
            if len(seqs) < batch:
                return


def _delete_messages(seqs: list[int], older_than: float) -> Callable[[Tx], tuple[int, int]]:
    def op(tx: Tx) -> tuple[int, int]:
        # checked again: a failed message retried since it was picked is pending now
        still = [
            r[0]
            for r in tx.conn.execute(
                f"SELECT seq FROM messages WHERE seq IN ({_marks(len(seqs))}) AND {_OLD_MESSAGE}",
                (*seqs, *FINAL, older_than),
            )
        ]
        if not still:
            return 0, 0
        marks = _marks(len(still))
        history = tx.conn.execute(
            "DELETE FROM message_history WHERE message_id IN"
            f" (SELECT message_id FROM messages WHERE seq IN ({marks}))",
            still,
        ).rowcount
        messages = tx.conn.execute(f"DELETE FROM messages WHERE seq IN ({marks})", still).rowcount
        return messages, history

    return op


def _delete_events(older_than: float, batch: int) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        return tx.conn.execute(
            "DELETE FROM events WHERE id IN"
            " (SELECT id FROM events WHERE time < ? ORDER BY time LIMIT ?)",
            (older_than, batch),
        ).rowcount

    return op


def _delete_inbox(older_than: float, batch: int) -> Callable[[Tx], int]:
    # Received messages are settled the moment they are stored: they go by age alone.
    def op(tx: Tx) -> int:
        return tx.conn.execute(
            "DELETE FROM inbox WHERE seq IN"
            " (SELECT seq FROM inbox WHERE received_at < ? ORDER BY received_at LIMIT ?)",
            (older_than, batch),
        ).rowcount

    return op


def _delete_deliveries(seqs: list[int], older_than: float) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        # checked again: a delivery redelivered since it was picked is pending now
        return tx.conn.execute(
            f"DELETE FROM webhook_deliveries WHERE seq IN ({_marks(len(seqs))})"
            f" AND {_OLD_DELIVERY}",
            (*seqs, older_than),
        ).rowcount

    return op


def _delete_webhook_events(
    older_than: float, below: str | None, since: int, batch: int
) -> Callable[[Tx], int]:
    bound = "" if below is None else " AND e.event_id < ?"
    args = (older_than,) if below is None else (older_than, below)

    def op(tx: Tx) -> int:
        return tx.conn.execute(
            "DELETE FROM webhook_events WHERE event_id IN (SELECT e.event_id FROM"
            f" webhook_events e WHERE e.time < ? AND {_FANNED_OUT}{bound} AND NOT EXISTS"
            " (SELECT 1 FROM webhook_deliveries d WHERE d.seq > ? AND d.event_id = e.event_id)"
            " ORDER BY e.event_id LIMIT ?)",
            (*args, since, batch),
        ).rowcount

    return op


def _clear_keys(seqs: list[int], keys_older_than: float) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        return tx.conn.execute(
            "UPDATE messages SET idempotency_key = NULL"
            f" WHERE seq IN ({_marks(len(seqs))}) AND {_OLD_KEY}",
            (*seqs, *FINAL, keys_older_than),
        ).rowcount

    return op


class Pruner:
    """The running daemon's periodic prune, on a thread of its own: a scheduler callback must
    be quick, and a prune waits on several commits."""

    def __init__(
        self,
        store: StoreAPI,
        *,
        retention_days: float,
        idempotency_days: float,
        batch: int,
        interval: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._days = (retention_days, idempotency_days)
        self._batch = batch
        self._interval = interval
        self._wall = wall
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="waz-prune", daemon=True)
        self.runs = 0

    @property
    def enabled(self) -> bool:
        return any(d > 0 for d in self._days)

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops between two batches; what is pruned so far stays pruned."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run_once(self) -> dict[str, int]:
        older_than, keys_older_than = cutoffs(self._wall(), *self._days)
        counts = self._store.prune(
            older_than,
            keys_older_than=keys_older_than,
            batch=self._batch,
            stop_when=self._stop.is_set,
        )
        self.runs += 1
        if any(counts.values()):
            logger.info(
                "retention: pruned {}",
                ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items()),
            )
        return counts

    def _run(self) -> None:
        # The first prune soon after start, so a daemon restarted more often than the interval
        # still prunes.
        delay = min(self._interval, 60.0)
        while not self._stop.wait(delay):
            delay = self._interval
            try:
                self.run_once()
            except ShuttingDown:
                return
            except Exception:
                logger.exception("retention: prune failed; trying again at the next interval")


__all__ = ["BATCH_MAX", "FINAL", "KINDS", "Pruner", "Retention", "count_prunable", "cutoffs"]
