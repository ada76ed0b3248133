"""The Store: durable instances, outbox, history, conflicts, event log and tokens in SQLite.

Writes go through the group-commit `Writer` (one thread, one connection); reads use a small pool
of read-only connections, so they never wait behind a commit and never touch the writer's
connection. Argument errors (bad status, wrong type) raise at once, before anything is queued;
errors that depend on what is stored (not found, exists, queue full) come through the Future of
the write, or are raised by the synchronous methods.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from waz_actors.errors import BadRequest, Exists, InvalidState, NotFound, QueueFull, ShuttingDown
from waz_actors.store.records import InstanceRecord, MessageRecord, TokenRecord
from waz_actors.store.schema import MIGRATIONS, Migration, migrate, user_version
from waz_actors.store.writer import Tx, Writer
from waz_actors.types import FINAL_STATUSES, PENDING_STATUSES, InstanceState, MessageStatus

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
DESIRED = ("running", "stopped")
BUSY_TIMEOUT = 30.0  # seconds a connection waits on a lock held by another process
_PENDING = tuple(sorted(str(s) for s in PENDING_STATUSES))
_STATUSES = tuple(str(s) for s in MessageStatus)
_MSG_COLUMNS = (
    "message_id, instance_id, tenant, recipient, text, media, status, attempts, last_error,"
    " wa_id, idempotency_key, created_at, updated_at, expires_at"
)
_SELECT_MSG = f"SELECT {_MSG_COLUMNS} FROM messages"
MIN_TOKEN_PREFIX = 6


def _json(value: Any, field: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise BadRequest(f"{field}: not JSON-serialisable: {e}", {"field": field}) from None


def _need_str(value: Any, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field}: expected a non-empty string, got {value!r}", {"field": field})


def _need_number(value: Any, field: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{field}: expected a number, got {value!r}", {"field": field})


def _status(value: Any, field: str = "status") -> str:
    if value not in _STATUSES:
        raise BadRequest(
            f"{field}: unknown message status {value!r}; known: {', '.join(_STATUSES)}",
            {"field": field},
        )
    return str(value)


def _allowed(current: str, new: str) -> bool:
    """A final status is final (no resend after `sent`), except an operator's retry of failed."""
    if current not in FINAL_STATUSES:
        return True
    return current == MessageStatus.FAILED and new == MessageStatus.QUEUED


class _Readers:
    """A bounded pool of read-only connections.

    A pool rather than one connection per thread: thousands of actor threads read the store, and
    a connection per thread would cost three file descriptors and a page cache each.
    """

    def __init__(self, path: Path, size: int) -> None:
        self._path = path
        self._slots = threading.BoundedSemaphore(size)
        self._free: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        self._slots.acquire()
        try:
            with self._lock:
                if self._closed:
                    raise ShuttingDown("the store is closed")
                conn = self._free.pop() if self._free else None
            if conn is None:
                conn = self._open()
                with self._lock:
                    self._all.append(conn)
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with self._lock:
                    self._free.append(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all, self._free = self._all, [], []
        for conn in conns:
            conn.close()


class Store:
    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        batch_max: int = 1000,
        wall: Callable[[], float] = time.time,
        readers: int = 8,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        if str(path) == ":memory:" or not str(path):
            raise ValueError("the store needs a file path (WAL does not work in memory)")
        level = synchronous.upper()
        if level not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_LEVELS)}")
        if isinstance(batch_max, bool) or not isinstance(batch_max, int) or batch_max < 1:
            raise ValueError(f"batch_max must be a positive integer, got {batch_max!r}")
        if readers < 1:
            raise ValueError("readers must be at least 1")
        self.path = Path(path).expanduser()
        self.synchronous = level
        self.batch_max = batch_max
        self.wall = wall
        self._readers_max = readers
        self._migrations = migrations
        self._writer: Writer | None = None
        self._readers: _Readers | None = None
        self._write_conn: sqlite3.Connection | None = None

    # -- life cycle --------------------------------------------------------------------------

    def open(self) -> None:
        if self._writer is not None:
            raise RuntimeError("store already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Messages and token hashes: readable by the daemon's user only. SQLite gives the
            # -wal and -shm files the same mode as the database file.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise RuntimeError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, self._migrations)
            counters = {
                row[0]: row[1]
                for row in conn.execute(
                    "SELECT instance_id, count(*) FROM messages WHERE status IN (?, ?)"
                    " GROUP BY instance_id",
                    _PENDING,
                )
            }
        except BaseException:
            conn.close()
            raise
        self._write_conn = conn
        self._writer = Writer(conn, batch_max=self.batch_max, counters=counters)
        self._readers = _Readers(self.path, self._readers_max)
        self._writer.start()

    def close(self) -> None:
        """Drain the writer (everything submitted is committed), then close every connection."""
        writer, readers, conn = self._writer, self._readers, self._write_conn
        if writer is None:
            return
        writer.close()
        if readers is not None:
            readers.close()
        if conn is not None:
            conn.close()
        self._writer = self._readers = self._write_conn = None

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writer(self) -> Writer:
        if self._writer is None:
            raise ShuttingDown("the store is not open")
        return self._writer

    def submit(self, op: Callable[[Tx], Any]) -> Future[Any]:
        """Run `op` in the writer's next group commit (for callers with their own SQL)."""
        return self.writer.submit(op)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far is committed."""
        self.writer.call(lambda tx: None, timeout)

    def stats(self) -> dict[str, int]:
        """Writer figures: commits, ops, batches, largest_batch."""
        return self.writer.stats()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if self._readers is None:
            raise ShuttingDown("the store is not open")
        with self._readers.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """Several reads that must agree with each other: one read transaction."""
        with self._read() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def schema_version(self) -> int:
        with self._read() as conn:
            return user_version(conn)

    def pragmas(self) -> dict[str, Any]:
        """The write connection's settings, read back from SQLite (what is really in force)."""

        def op(tx: Tx) -> dict[str, Any]:
            # synchronous and foreign_keys are per connection: ask the one that writes.
            return {
                "journal_mode": tx.conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": tx.conn.execute("PRAGMA synchronous").fetchone()[0],
                "foreign_keys": tx.conn.execute("PRAGMA foreign_keys").fetchone()[0],
            }

        return self.writer.call(op)

    # -- instances ---------------------------------------------------------------------------

    def create_instance(self, rec: InstanceRecord) -> None:
        _need_str(rec.instance_id, "instance_id")
        if len(rec.instance_id) > 64:
            raise BadRequest("instance_id: at most 64 characters", {"field": "instance_id"})
        _need_str(rec.tenant, "tenant")
        _need_str(rec.driver, "driver")
        if rec.desired not in DESIRED:
            raise BadRequest(
                f"desired: must be running or stopped, got {rec.desired!r}", {"field": "desired"}
            )
        if rec.state not in tuple(InstanceState):
            raise BadRequest(f"state: unknown instance state {rec.state!r}", {"field": "state"})
        if not isinstance(rec.settings, dict):
            raise BadRequest("settings: expected a map", {"field": "settings"})
        settings = _json(rec.settings, "settings")
        _need_number(rec.since, "since")
        _need_number(rec.created_at, "created_at")

        def op(tx: Tx) -> None:
            try:
                tx.conn.execute(
                    "INSERT INTO instances (instance_id, tenant, driver, settings, desired, state,"
                    " since, jid, last_code, last_reason, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        rec.instance_id,
                        rec.tenant,
                        rec.driver,
                        settings,
                        rec.desired,
                        str(rec.state),
                        rec.since,
                        rec.jid,
                        rec.last_code,
                        rec.last_reason,
                        rec.created_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise Exists(
                    f"instance {rec.instance_id} already exists", {"instance_id": rec.instance_id}
                ) from None

        self.writer.call(op)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
        return InstanceRecord.from_row(row) if row else None

    def list_instances(self, tenant: str | None = None) -> list[InstanceRecord]:
        with self._read() as conn:
            if tenant is None:
                rows = conn.execute("SELECT * FROM instances ORDER BY created_at, instance_id")
            else:
                rows = conn.execute(
                    "SELECT * FROM instances WHERE tenant = ? ORDER BY created_at, instance_id",
                    (tenant,),
                )
            return [InstanceRecord.from_row(r) for r in rows]

    def save_state(
        self,
        instance_id: str,
        state: str,
        *,
        since: float,
        reason: str | None = None,
        code: int | None = None,
        jid: str | None = None,
    ) -> Future[None]:
        """Record the instance's state; reason, code and jid are written as given."""
        if state not in tuple(InstanceState):
            raise BadRequest(f"state: unknown instance state {state!r}", {"field": "state"})
        _need_number(since, "since")
        args = (str(state), since, jid, code, reason, instance_id)

        def op(tx: Tx) -> None:
            cur = tx.conn.execute(
                "UPDATE instances SET state = ?, since = ?, jid = ?, last_code = ?,"
                " last_reason = ? WHERE instance_id = ?",
                args,
            )
            if cur.rowcount == 0:
                raise NotFound(f"instance {instance_id} not found", {"instance_id": instance_id})

        return self.writer.submit(op)

    def set_desired(self, instance_id: str, desired: str) -> Future[None]:
        if desired not in DESIRED:
            raise BadRequest(
                f"desired: must be running or stopped, got {desired!r}", {"field": "desired"}
            )

        def op(tx: Tx) -> None:
            cur = tx.conn.execute(
                "UPDATE instances SET desired = ? WHERE instance_id = ?", (desired, instance_id)
            )
            if cur.rowcount == 0:
                raise NotFound(f"instance {instance_id} not found", {"instance_id": instance_id})

        return self.writer.submit(op)

    def update_instance(
        self, instance_id: str, *, driver: str, tenant: str, settings: dict[str, Any], desired: str
    ) -> None:
        """Config reload: new driver, tenant, settings or autostart for an existing instance."""
        _need_str(driver, "driver")
        _need_str(tenant, "tenant")
        if desired not in DESIRED:
            raise BadRequest(
                f"desired: must be running or stopped, got {desired!r}", {"field": "desired"}
            )
        if not isinstance(settings, dict):
            raise BadRequest("settings: expected a map", {"field": "settings"})
        blob = _json(settings, "settings")

        def op(tx: Tx) -> None:
            cur = tx.conn.execute(
                "UPDATE instances SET driver = ?, tenant = ?, settings = ?, desired = ?"
                " WHERE instance_id = ?",
                (driver, tenant, blob, desired, instance_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"instance {instance_id} not found", {"instance_id": instance_id})

        self.writer.submit(op).result()

    def delete_instance(self, instance_id: str, reason: str = "instance deleted") -> list[str]:
        """Cancel every pending message (with history), drop conflicts and the instance row."""
        now = self.wall()

        def op(tx: Tx) -> list[str]:
            c = tx.conn
            if (
                c.execute(
                    "SELECT 1 FROM instances WHERE instance_id = ?", (instance_id,)
                ).fetchone()
                is None
            ):
                raise NotFound(f"instance {instance_id} not found", {"instance_id": instance_id})
            ids = self._cancel_where(tx, instance_id, _PENDING, reason, now)
            c.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))
            return ids

        return self.writer.call(op)

    # -- messages ----------------------------------------------------------------------------

    def enqueue(self, rec: MessageRecord, *, max_queue: int) -> Future[tuple[MessageRecord, bool]]:
        """Insert the message as queued; the Future resolves after the commit.

        Resolves to (record, True) when inserted, (the earlier record, False) when the tenant
        already used this idempotency key; raises QueueFull when the instance has max_queue
        pending messages, NotFound for an unknown instance, Exists for a reused message id.
        """
        _need_str(rec.message_id, "message_id")
        _need_str(rec.instance_id, "instance_id")
        _need_str(rec.tenant, "tenant")
        _need_str(rec.to, "to")
        if rec.text is not None and not isinstance(rec.text, str):
            raise BadRequest("text: expected a string", {"field": "text"})
        if rec.media is not None and not isinstance(rec.media, dict):
            raise BadRequest("media: expected a map", {"field": "media"})
        if rec.text is None and rec.media is None:
            raise BadRequest("a message needs text or media", {"field": "text"})
        _need_str(rec.idempotency_key, "idempotency_key", optional=True)
        _need_number(rec.created_at, "created_at")
        _need_number(rec.expires_at, "expires_at", optional=True)
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 0:
            raise BadRequest(
                f"max_queue: expected a non-negative integer, got {max_queue!r}",
                {"field": "max_queue"},
            )
        media = _json(rec.media, "media") if rec.media is not None else None
        fresh = (
            rec.status == MessageStatus.QUEUED.value
            and rec.attempts == 0
            and rec.last_error is None
            and rec.wa_id is None
            and rec.updated_at == rec.created_at
        )
        stored = (
            rec
            if fresh
            else MessageRecord(
                message_id=rec.message_id,
                instance_id=rec.instance_id,
                tenant=rec.tenant,
                to=rec.to,
                text=rec.text,
                media=rec.media,
                status=MessageStatus.QUEUED.value,
                attempts=0,
                last_error=None,
                wa_id=None,
                idempotency_key=rec.idempotency_key,
                created_at=rec.created_at,
                updated_at=rec.created_at,
                expires_at=rec.expires_at,
            )
        )

        def op(tx: Tx) -> tuple[MessageRecord, bool]:
            c = tx.conn
            if rec.idempotency_key is not None:
                row = c.execute(
                    f"{_SELECT_MSG} WHERE tenant = ? AND idempotency_key = ?",
                    (rec.tenant, rec.idempotency_key),
                ).fetchone()
                if row is not None:
                    return MessageRecord.from_row(row), False
            if (
                c.execute(
                    "SELECT 1 FROM instances WHERE instance_id = ?", (rec.instance_id,)
                ).fetchone()
                is None
            ):
                raise NotFound(
                    f"instance {rec.instance_id} not found", {"instance_id": rec.instance_id}
                )
            pending = tx.pending(rec.instance_id)
            if pending >= max_queue:
                raise QueueFull(
                    f"instance {rec.instance_id} has {pending} pending messages (max {max_queue})",
                    {"instance_id": rec.instance_id, "max_queue": max_queue},
                )
            try:
                c.execute(
                    f"INSERT INTO messages ({_MSG_COLUMNS}) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, 0, NULL, NULL, ?, ?, ?, ?)",
                    (
                        stored.message_id,
                        stored.instance_id,
                        stored.tenant,
                        stored.to,
                        stored.text,
                        media,
                        stored.status,
                        stored.idempotency_key,
                        stored.created_at,
                        stored.updated_at,
                        stored.expires_at,
                    ),
                )
            except sqlite3.IntegrityError:
                raise Exists(
                    f"message {rec.message_id} already exists", {"message_id": rec.message_id}
                ) from None
            c.execute(
                "INSERT INTO message_history (message_id, status, time, reason)"
                " VALUES (?, ?, ?, ?)",
                (stored.message_id, stored.status, stored.created_at, "accepted"),
            )
            tx.adjust(rec.instance_id, 1)
            return stored, True

        return self.writer.submit(op)

    def get_message(self, message_id: str) -> MessageRecord | None:
        with self._read() as conn:
            row = conn.execute(f"{_SELECT_MSG} WHERE message_id = ?", (message_id,)).fetchone()
        return MessageRecord.from_row(row) if row else None

    def history(self, message_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT status, time, reason FROM message_history WHERE message_id = ? ORDER BY id",
                (message_id,),
            ).fetchall()
        return [{"status": r["status"], "time": r["time"], "reason": r["reason"]} for r in rows]

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
    ) -> Future[bool]:
        """Set the status (and attempts/error/wa_id when given) and add a history row.

        With `only_if`, updates only when the current status is one of those (False otherwise).
        A final status never changes again, except failed -> queued (InvalidState otherwise).
        """
        return self.writer.submit(
            self._status_op(
                message_id,
                status,
                attempts=attempts,
                error=error,
                wa_id=wa_id,
                reason=reason,
                only_if=only_if,
            )
        )

    def set_status(self, message_id: str, status: str, **changes: Any) -> None:
        """update_message for a caller that does not wait (an instance on its send path): the
        same write in the same order, without a Future; a refused change is logged."""
        self.writer.post(self._status_op(message_id, status, **changes))

    def _status_op(
        self,
        message_id: str,
        status: str,
        *,
        attempts: int | None = None,
        error: str | None = None,
        wa_id: str | None = None,
        reason: str | None = None,
        only_if: Iterable[str] | None = None,
    ) -> Callable[[Tx], bool]:
        new = _status(status)
        guard = None if only_if is None else {_status(s, "only_if") for s in only_if}
        if attempts is not None and (
            isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0
        ):
            raise BadRequest(
                f"attempts: expected a non-negative integer, got {attempts!r}",
                {"field": "attempts"},
            )
        now = self.wall()

        def op(tx: Tx) -> bool:
            c = tx.conn
            row = c.execute(
                "SELECT instance_id, status FROM messages WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"message {message_id} not found", {"message_id": message_id})
            current = row["status"]
            if guard is not None and current not in guard:
                return False
            if not _allowed(current, new):
                raise InvalidState(
                    f"message {message_id} is {current} and cannot become {new}",
                    {"message_id": message_id, "status": current},
                )
            c.execute(
                "UPDATE messages SET status = ?, attempts = coalesce(?, attempts),"
                " last_error = coalesce(?, last_error), wa_id = coalesce(?, wa_id),"
                " updated_at = ? WHERE message_id = ?",
                (new, attempts, error, wa_id, now, message_id),
            )
            c.execute(
                "INSERT INTO message_history (message_id, status, time, reason)"
                " VALUES (?, ?, ?, ?)",
                (message_id, new, now, reason),
            )
            tx.adjust(row["instance_id"], (new in _PENDING) - (current in _PENDING))
            return True

        return op

    def pending_messages(self, instance_id: str) -> list[MessageRecord]:
        with self._read() as conn:
            rows = conn.execute(
                f"{_SELECT_MSG} WHERE instance_id = ? AND status IN (?, ?)"
                " ORDER BY created_at, seq",
                (instance_id, *_PENDING),
            ).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    def list_messages(
        self,
        instance_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[MessageRecord]:
        """A page in insertion order; `after` is the last message id of the previous page."""
        if status is not None:
            _status(status)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise BadRequest(f"limit: expected 1 to 1000, got {limit!r}", {"field": "limit"})
        with self._read() as conn:
            start = 0
            if after is not None:
                row = conn.execute(
                    "SELECT seq FROM messages WHERE message_id = ? AND instance_id = ?",
                    (after, instance_id),
                ).fetchone()
                if row is None:
                    raise BadRequest(
                        f"after: no message {after!r} in this instance", {"field": "after"}
                    )
                start = row[0]
            sql = f"{_SELECT_MSG} WHERE instance_id = ? AND seq > ?"
            args: list[Any] = [instance_id, start]
            if status is not None:
                sql += " AND status = ?"
                args.append(status)
            sql += " ORDER BY seq LIMIT ?"
            args.append(limit)
            rows = conn.execute(sql, args).fetchall()
        return [MessageRecord.from_row(r) for r in rows]

    def queue_stats(self, instance_id: str, now_wall: float | None = None) -> dict[str, Any]:
        now = self.wall() if now_wall is None else now_wall
        with self._snapshot() as conn:
            counts = dict(
                conn.execute(
                    "SELECT status, count(*) FROM messages WHERE instance_id = ? GROUP BY status",
                    (instance_id,),
                ).fetchall()
            )
            oldest = conn.execute(
                "SELECT min(created_at) FROM messages WHERE instance_id = ? AND status IN (?, ?)",
                (instance_id, *_PENDING),
            ).fetchone()[0]
        return {
            "depth": counts.get("queued", 0),
            "in_flight": counts.get("sending", 0),
            "oldest_age": None if oldest is None else max(0.0, now - oldest),
            "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0),
            "cancelled": counts.get("cancelled", 0),
            "expired": counts.get("expired", 0),
        }

    def pending_count(self, instance_id: str) -> int:
        """Queued + sending, from the committed in-memory counter (no query)."""
        return self.writer.counters.get(instance_id, 0)

    def recover_sending(self) -> int:
        """At start-up: every `sending` message goes back to `queued` with the same id."""
        now = self.wall()

        def op(tx: Tx) -> int:
            c = tx.conn
            ids = [
                r[0]
                for r in c.execute("SELECT message_id FROM messages WHERE status = ?", ("sending",))
            ]
            self._set_status(c, ids, "queued", "recovered after restart", now)
            return len(ids)

        return self.writer.call(op)

    def cancel_pending(
        self, instance_id: str, *, status: str = "queued", reason: str = "purged"
    ) -> list[str]:
        """Cancel the instance's messages in `status` (queued or sending); returns their ids."""
        if status not in _PENDING:
            raise BadRequest(
                f"status: only queued or sending messages can be cancelled, got {status!r}",
                {"field": "status"},
            )
        now = self.wall()
        return self.writer.call(
            lambda tx: self._cancel_where(tx, instance_id, (status,), reason, now)
        )

    def requeue_failed(
        self, instance_id: str, message_ids: list[str] | None, *, max_queue: int
    ) -> list[str]:
        """Failed -> queued (attempts reset), oldest first, while the queue has room."""
        if message_ids is not None and (
            not isinstance(message_ids, list | tuple)
            or not all(isinstance(m, str) for m in message_ids)
        ):
            raise BadRequest("message_ids: expected a list of strings", {"field": "message_ids"})
        now = self.wall()

        def op(tx: Tx) -> list[str]:
            c = tx.conn
            rows = c.execute(
                "SELECT message_id FROM messages WHERE instance_id = ? AND status = 'failed'"
                " ORDER BY created_at, seq",
                (instance_id,),
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
            self._set_status(c, ids, "queued", "retried by operator", now)
            tx.adjust(instance_id, len(ids))
            return ids

        return self.writer.call(op)

    def totals(self) -> dict[str, int]:
        with self._read() as conn:
            counts = dict(
                conn.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall()
            )
        return {s: counts.get(s, 0) for s in _STATUSES}

    def _set_status(
        self, c: sqlite3.Connection, ids: list[str], status: str, reason: str, now: float
    ) -> None:
        c.executemany(
            "UPDATE messages SET status = ?, updated_at = ? WHERE message_id = ?",
            [(status, now, m) for m in ids],
        )
        c.executemany(
            "INSERT INTO message_history (message_id, status, time, reason) VALUES (?, ?, ?, ?)",
            [(m, status, now, reason) for m in ids],
        )

    def _cancel_where(
        self, tx: Tx, instance_id: str, statuses: Sequence[str], reason: str, now: float
    ) -> list[str]:
        marks = ", ".join("?" * len(statuses))
        rows = tx.conn.execute(
            f"SELECT message_id FROM messages WHERE instance_id = ? AND status IN ({marks})"
            " ORDER BY created_at, seq",
            (instance_id, *statuses),
        ).fetchall()
        ids = [r[0] for r in rows]
        self._set_status(tx.conn, ids, "cancelled", reason, now)
        tx.adjust(instance_id, -len(ids))
        return ids

    # -- conflicts ---------------------------------------------------------------------------

    def add_conflict(self, instance_id: str, at: float) -> Future[None]:
        _need_number(at, "at")

        def op(tx: Tx) -> None:
            try:
                tx.conn.execute(
                    "INSERT INTO conflicts (instance_id, at) VALUES (?, ?)", (instance_id, at)
                )
            except sqlite3.IntegrityError:
                raise NotFound(
                    f"instance {instance_id} not found", {"instance_id": instance_id}
                ) from None

        return self.writer.submit(op)

    def conflicts_since(self, instance_id: str, since: float) -> list[float]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT at FROM conflicts WHERE instance_id = ? AND at >= ? ORDER BY at",
                (instance_id, since),
            ).fetchall()
        return [r[0] for r in rows]

    def all_conflicts_since(self, since: float) -> dict[str, list[float]]:
        """Every instance's conflicts since `since`, in one query (start-up of a large fleet)."""
        out: dict[str, list[float]] = {}
        with self._read() as conn:
            rows = conn.execute(
                "SELECT instance_id, at FROM conflicts WHERE at >= ? ORDER BY at", (since,)
            ).fetchall()
        for instance_id, at in rows:
            out.setdefault(instance_id, []).append(at)
        return out

    def conflicts_count_since(self, since: float) -> int:
        with self._read() as conn:
            return conn.execute(
                "SELECT count(*) FROM conflicts WHERE at >= ?", (since,)
            ).fetchone()[0]

    # -- event log ---------------------------------------------------------------------------

    def log_event(self, topic: str, body: dict[str, Any]) -> Future[None]:
        _need_str(topic, "topic")
        if not isinstance(body, dict):
            raise BadRequest("body: expected a map", {"field": "body"})
        text = _json(body, "body")
        now = self.wall()

        def op(tx: Tx) -> None:
            tx.conn.execute(
                "INSERT INTO events (time, topic, body) VALUES (?, ?, ?)", (now, topic, text)
            )

        return self.writer.submit(op)

    def recent_events(self, limit: int = 100, prefix: str = "") -> list[dict[str, Any]]:
        """The last `limit` events whose topic starts with `prefix`, oldest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise BadRequest(
                f"limit: expected a positive integer, got {limit!r}", {"field": "limit"}
            )
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, time, topic, body FROM events WHERE substr(topic, 1, ?) = ?"
                " ORDER BY id DESC LIMIT ?",
                (len(prefix), prefix, limit),
            ).fetchall()
        return [
            {"id": r["id"], "time": r["time"], "topic": r["topic"], "body": json.loads(r["body"])}
            for r in reversed(rows)
        ]

    def prune_events(self, older_than: float) -> int:
        _need_number(older_than, "older_than")
        return self.writer.call(
            lambda tx: tx.conn.execute("DELETE FROM events WHERE time < ?", (older_than,)).rowcount
        )

    # -- tokens ------------------------------------------------------------------------------

    def add_token(self, rec: TokenRecord) -> None:
        _need_str(rec.token_hash, "token_hash")
        if rec.tenant is not None and not isinstance(rec.tenant, str):
            raise BadRequest("tenant: expected a string or None", {"field": "tenant"})
        if not isinstance(rec.label, str):
            raise BadRequest("label: expected a string", {"field": "label"})

        def op(tx: Tx) -> None:
            try:
                tx.conn.execute(
                    "INSERT INTO tokens (token_hash, tenant, admin, label, created_at, revoked)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        rec.token_hash,
                        rec.tenant,
                        int(rec.admin),
                        rec.label,
                        rec.created_at,
                        int(rec.revoked),
                    ),
                )
            except sqlite3.IntegrityError:
                raise Exists("token already exists", {"label": rec.label}) from None

        self.writer.call(op)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        return TokenRecord.from_row(row) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM tokens ORDER BY created_at, token_hash").fetchall()
        return [TokenRecord.from_row(r) for r in rows]

    def revoke_token(self, token_hash_or_prefix: str) -> bool:
        """Revoke by full hash or a unique prefix (at least 6 characters); False if none match."""
        key = token_hash_or_prefix
        _need_str(key, "token")
        if len(key) < MIN_TOKEN_PREFIX:
            raise BadRequest(
                f"token: give at least {MIN_TOKEN_PREFIX} characters of the hash",
                {"field": "token"},
            )

        def op(tx: Tx) -> bool:
            c = tx.conn
            rows = c.execute(
                "SELECT token_hash FROM tokens WHERE substr(token_hash, 1, ?) = ?", (len(key), key)
            ).fetchall()
            exact = [r[0] for r in rows if r[0] == key]
            matches = exact or [r[0] for r in rows]
            if not matches:
                return False
            if len(matches) > 1:
                raise BadRequest(
                    f"token: prefix {key!r} matches {len(matches)} tokens", {"field": "token"}
                )
            c.execute("UPDATE tokens SET revoked = 1 WHERE token_hash = ?", (matches[0],))
            return True

        return self.writer.call(op)

    # -- backup ------------------------------------------------------------------------------

    def backup(self, dest: str | Path) -> None:
        """Consistent online copy, taken from a read connection while writes go on.

        Written to a temporary file and renamed, so `dest` is never a half-written database.
        """
        target = Path(dest).expanduser()
        if target.resolve() == self.path.resolve():
            raise BadRequest("backup: destination is the live database", {"field": "dest"})
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.unlink(missing_ok=True)
        with self._read() as conn:
            out = sqlite3.connect(tmp)
            try:
                conn.backup(out)
                # A self-contained file: no -wal beside it to copy along.
                out.execute("PRAGMA journal_mode = DELETE")
            finally:
                out.close()
        os.replace(tmp, target)


__all__ = ["Store"]
