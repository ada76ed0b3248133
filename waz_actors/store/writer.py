"""Group commit: one thread owns the write connection and commits many operations at once.

Callers submit an operation (a function of a `Tx`) and get a `concurrent.futures.Future`. The
writer takes everything queued (up to `batch_max`), runs it in ONE transaction with a SAVEPOINT
per operation, commits once, and only then resolves the futures. So a resolved future means the
change is durable, a failing operation rolls back only itself, and N concurrent sends cost one
fsync instead of N. Done-callbacks run on the writer thread: keep them short, and never wait on
another write there.

The writer also owns the per-instance pending counters (queued + sending): operations adjust them
through their `Tx`, the adjustment becomes visible to later operations of the same batch at once,
and to everyone else only after the commit. A failed commit discards the batch's adjustments, so
the counters always match what is on disk.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from loguru import logger

from waz_actors.errors import ShuttingDown
from waz_actors.store.fencing import (
    Claimed,
    Fenced,
    FenceKey,
    Fencing,
    claims_of,
    lock_claims,
    stale_epoch,
)
from waz_actors.store.sql import Conn, Error

T = TypeVar("T")


class Tx:
    """What one write operation sees: the connection and the pending counters so far."""

    __slots__ = ("_batch", "_committed", "_own", "conn")

    def __init__(self, conn: Conn, committed: dict[str, int], batch: dict[str, int]) -> None:
        self.conn = conn
        self._committed = committed
        self._batch = batch
        self._own: dict[str, int] = {}

    def pending(self, instance_id: str) -> int:
        return (
            self._committed.get(instance_id, 0)
            + self._batch.get(instance_id, 0)
            + self._own.get(instance_id, 0)
        )

    def adjust(self, instance_id: str, delta: int) -> None:
        if delta:
            self._own[instance_id] = self._own.get(instance_id, 0) + delta


Op = Callable[[Tx], T]
_RETRY = object()  # an operation of an optimistic batch failed: run it again with savepoints
_Item = tuple[Callable[[Tx], Any], Future[Any] | None]  # None: posted, nobody waits


def _merge(into: dict[str, int], delta: dict[str, int]) -> None:
    for key, n in delta.items():
        total = into.get(key, 0) + n
        if total:
            into[key] = total
        else:
            into.pop(key, None)


class Writer:
    def __init__(self, conn: Conn, *, batch_max: int, counters: dict[str, int]) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self._conn = conn
        self._batch_max = batch_max
        # Written only by the writer thread; other threads only read single keys (atomic).
        self.counters = counters
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._finished = threading.Event()  # the writer thread took its last batch
        self._thread = threading.Thread(target=self._run, name="waz-store-writer", daemon=True)
        # Called on the writer thread after each commit (quick, non-blocking: the webhook tap
        # wakes its delivery worker once the deliveries it wrote are visible).
        self.after_commit: Callable[[], None] | None = None
        # A cluster on PostgreSQL (Store.fence_writes): owner writes carry their lease epoch
        # and each transaction checks them all in one statement (store/fencing.py).
        self.fencing: Fencing | None = None
        self._refused: set[FenceKey] = set()  # by the last transaction's fence check
        self.commits = 0
        self.ops = 0
        self.batches = 0
        self.largest_batch = 0

    def start(self) -> None:
        self._thread.start()

    def submit(
        self, op: Callable[[Tx], T], *, owner: str | None = None, claim: str | None = None
    ) -> Future[T]:
        """`owner`: the instance whose owner makes this write; fenced when fencing is on.
        `claim`: the cluster claim the operation fences itself with (store/fencing.py
        Claimed): its row is locked, in key order with the batch's others, before any runs."""
        fut: Future[T] = Future()
        if claim is not None:
            op = Claimed(op, claim)
        self._put(op if owner is None else self._owned(op, owner), fut)
        return fut

    def post(self, op: Callable[[Tx], Any], *, owner: str | None = None) -> None:
        """Submit with nobody waiting: no Future (a lock and a condition each) on hot paths
        whose caller never looks at the outcome. A failure is logged instead."""
        self._put(op if owner is None else self._owned(op, owner), None)

    def _owned(self, op: Callable[[Tx], Any], owner: str) -> Callable[[Tx], Any]:
        fencing = self.fencing
        return op if fencing is None else fencing.wrap(op, owner)

    def _put(self, op: Callable[[Tx], Any], fut: Future[Any] | None) -> None:
        # No lock: many actor threads submit at once, and a contended lock costs each a trip
        # through the GIL. A submit racing close() is failed by whichever of the writer's
        # final drain or the check below sees it last (see _fail_leftovers).
        if self._closed:
            _refuse(op, fut)
            return
        self._queue.put((op, fut))
        if self._finished.is_set():
            self._fail_leftovers()

    def call(
        self, op: Callable[[Tx], T], timeout: float | None = None, *, owner: str | None = None
    ) -> T:
        """Submit and wait for the commit.

        Futures resolve on the writer thread, so a done-callback that waited on another write
        would wait forever: refuse that loudly instead.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("a synchronous store write from the writer thread would deadlock")
        return self.submit(op, owner=owner).result(timeout)

    def close(self) -> None:
        """Run everything already submitted, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()

    def stats(self) -> dict[str, int]:
        return {
            "commits": self.commits,
            "ops": self.ops,
            "batches": self.batches,
            "largest_batch": self.largest_batch,
        }

    # -- writer thread -----------------------------------------------------------------------

    def _fail_leftovers(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _refuse(*item)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._finished.set()
            self._fail_leftovers()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                self._run_batch(batch)
            except BaseException as e:  # never let the writer die with callers waiting
                logger.exception("store writer batch failed")
                for _, fut in batch:
                    if fut is not None and not fut.done():
                        fut.set_exception(e)
            if stop:
                return

    def _run_batch(self, batch: list[_Item]) -> None:
        live = [(op, fut) for op, fut in batch if fut is None or fut.set_running_or_notify_cancel()]
        if not live:
            return
        # Optimistic first: no SAVEPOINT per operation (three fewer statements each, and every
        # statement hands the GIL round). If any operation raises, the whole transaction is
        # rolled back and the batch runs again with a SAVEPOINT per operation, so a failing
        # operation still rolls back only itself. Operations only touch the database and
        # their Tx, so running one twice is safe.
        if getattr(self._conn, "pipelined", None) is not None:
            done = self._attempt_pipelined(live)
        else:
            done = self._attempt(live, savepoints=False)
        if done is _RETRY:
            done = self._attempt(live, savepoints=True)
        if self._refused and self.fencing is not None:
            self.fencing.stale(self._refused)  # refused whether or not the rest committed
        if not isinstance(done, tuple):
            return  # every future has its exception already
        outcomes, delta = done
        _merge(self.counters, delta)
        self.commits += 1
        self.batches += 1
        self.ops += len(live)
        self.largest_batch = max(self.largest_batch, len(live))
        if self.after_commit is not None:
            try:
                self.after_commit()
            except Exception:
                logger.exception("after-commit hook failed")
        for fut, ok, value in outcomes:
            if fut is None:
                if not ok:
                    logger.opt(exception=value).error("store write failed (nobody waited)")
            elif ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _attempt(
        self, live: list[_Item], *, savepoints: bool
    ) -> tuple[list[tuple[Future[Any] | None, bool, Any]], dict[str, int]] | object | None:
        """Run the batch in one transaction and commit it: the outcomes and counter changes;
        _RETRY when an operation failed alone (only without savepoints); None when the whole
        batch failed and every future has its exception (never run again: its callers know)."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Error as e:
            self._fail_all(live, e)
            return None
        refused = self._fence(live)
        if refused is None:
            return None
        delta: dict[str, int] = {}
        outcomes: list[tuple[Future[Any] | None, bool, Any]] = []
        for op, fut in live:
            if refused and type(op) is Fenced and op.key in refused:
                outcomes.append((fut, False, stale_epoch(op.key)))  # never run: nothing to undo
                continue
            tx = Tx(conn, self.counters, delta)
            if savepoints:
                conn.execute("SAVEPOINT op")
            try:
                value = op(tx)
            except Exception as e:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (e.g. disk full): nothing of
                    # this batch is on disk, so nothing of it may be acknowledged.
                    self._fail_all(live, e)
                    return None
                if not savepoints:
                    conn.execute("ROLLBACK")
                    return _RETRY
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((fut, False, e))
            else:
                if savepoints:
                    conn.execute("RELEASE op")
                _merge(delta, tx._own)
                outcomes.append((fut, True, value))
        try:
            conn.execute("COMMIT")
        except Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._fail_all(live, e)
            return None
        return outcomes, delta

    def _fence(self, live: list[_Item]) -> set[FenceKey] | None:
        """Right after BEGIN: the owner writes of the batch whose epoch the database refused
        (one statement for all, store/fencing.py), and the batch's claim rows locked in key
        order; None when the check itself failed (the
        transaction is rolled back and every future has its exception)."""
        self._refused = set()
        keys = set() if self.fencing is None else {op.key for op, _ in live if type(op) is Fenced}
        claims = claims_of(op for op, _ in live)
        if not keys and not claims:
            return self._refused
        try:
            if keys and self.fencing is not None:
                self._refused = self.fencing.refused(self._conn, keys)
            lock_claims(self._conn, claims)
        except Exception as e:
            with contextlib.suppress(Error):
                self._conn.execute("ROLLBACK")
            self._fail_all(live, e)
            return None
        return self._refused

    def _attempt_pipelined(
        self, live: list[_Item]
    ) -> tuple[list[tuple[Future[Any] | None, bool, Any]], dict[str, int]] | object | None:
        """The optimistic attempt on PostgreSQL: the batch's statements go out in a pipeline
        (store/pg.py PgConn.pipelined), so only the results an operation reads cost a round
        trip. An error then surfaces wherever the pipeline next syncs, not necessarily in the
        operation that caused it: any error rolls the whole transaction back and the batch
        runs again statement by statement, with savepoints (_RETRY), where every error is
        its operation's. Nothing is committed until every result came back without one."""
        conn: Any = self._conn
        delta: dict[str, int] = {}
        outcomes: list[tuple[Future[Any] | None, bool, Any]] = []
        told = False  # every future has its exception: the batch must never run again
        try:
            with conn.pipelined():
                conn.execute("BEGIN IMMEDIATE")
                refused = self._fence(live)  # reads its answer: the BEGIN's error shows here
                if refused is None:
                    told = True
                    return None  # rolled back, every future failed (as in _attempt)
                for op, fut in live:
                    if refused and type(op) is Fenced and op.key in refused:
                        outcomes.append((fut, False, stale_epoch(op.key)))
                        continue
                    tx = Tx(conn, self.counters, delta)
                    value = op(tx)
                    _merge(delta, tx._own)
                    outcomes.append((fut, True, value))
                conn.sync()
            if conn.failed:  # cannot be after a clean sync; COMMIT would roll back silently
                raise Error("transaction failed in the pipeline")
        except Exception as e:
            if told:
                # Leaving the pipeline failed after the fence check had failed and the
                # callers were told so: a retry would commit what they were told failed.
                logger.warning("store: leaving the pipeline failed after a failed batch: {}", e)
                return None
            if conn.broken:
                return _RETRY  # nothing was committed; the retry's BEGIN reconnects
            if not conn.in_transaction:
                # An operation ended the transaction (as SQLite does on a full disk): see
                # _attempt; none of the batch may run again behind its callers' backs.
                self._fail_all(live, e)
                return None
            try:
                conn.rollback()  # PgConn's: also forgets statements the pipeline cut off
            except Error as e2:
                self._fail_all(live, e2)
                return None
            return _RETRY
        try:
            conn.execute("COMMIT")
        except Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._fail_all(live, e)
            return None
        return outcomes, delta

    def _fail_all(self, live: list[_Item], error: BaseException) -> None:
        logger.error("store commit failed, {} operations not applied: {}", len(live), error)
        for _, fut in live:
            if fut is not None and not fut.done():
                fut.set_exception(error)


def _refuse(op: Callable[[Tx], Any], fut: Future[Any] | None) -> None:
    if fut is None:
        logger.error("store closed: write dropped: {}", getattr(op, "__qualname__", op))
    elif fut.set_running_or_notify_cancel():
        fut.set_exception(ShuttingDown("the store is closed"))


__all__ = ["Tx", "Writer"]
