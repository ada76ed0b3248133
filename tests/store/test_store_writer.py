"""Group commit: batching, isolation of a failing op, the queue cap under concurrency, close."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from tests.store.store_helpers import hold_writer, instance, message
from waz_actors.errors import NotFound, QueueFull, ShuttingDown
from waz_actors.store import MessageRecord, Store
from waz_actors.store.sql import Error


def test_concurrent_enqueues_share_commits(store: Store) -> None:
    before = store.stats()
    n = 400
    barrier = threading.Barrier(8)

    def worker(k: int) -> list[Future[tuple[MessageRecord, bool]]]:
        barrier.wait(5)
        return [store.enqueue(message(), max_queue=n) for _ in range(n // 8)]

    with ThreadPoolExecutor(8) as pool:
        futures = [f for fs in pool.map(worker, range(8)) for f in fs]
    assert all(f.result(10)[1] for f in futures)
    after = store.stats()
    commits = after["commits"] - before["commits"]
    assert after["ops"] - before["ops"] == n
    assert commits < n / 4, f"{commits} commits for {n} enqueues"
    assert store.totals()["queued"] == n


def test_held_writer_commits_a_whole_batch_once(store: Store) -> None:
    before = store.stats()["commits"]
    release, held = hold_writer(store)
    futures = [store.enqueue(message(), max_queue=100) for _ in range(50)]
    assert not any(f.done() for f in futures)  # nothing acknowledged before its commit
    release.set()
    held.result(5)
    assert all(f.result(5)[1] for f in futures)
    assert store.stats()["commits"] - before == 2  # the held op's batch, then all 50 at once
    assert store.stats()["largest_batch"] >= 50


def test_batch_max_splits_batches(make_store: Callable[..., Store]) -> None:
    s = make_store(batch_max=10)
    s.create_instance(instance("i1"))
    before = s.stats()["commits"]
    release, _held = hold_writer(s)
    futures = [s.enqueue(message(), max_queue=100) for _ in range(35)]
    release.set()
    for f in futures:
        f.result(5)
    assert s.stats()["commits"] - before == 1 + 4  # 10 + 10 + 10 + 5
    assert s.stats()["largest_batch"] == 10


def test_one_failing_op_does_not_fail_its_batch(store: Store) -> None:
    before = store.stats()["commits"]
    release, held = hold_writer(store)
    good1 = store.enqueue(message(), max_queue=100)

    def half_done_then_fail(tx: Any) -> None:
        tx.conn.execute(
            "INSERT INTO events (time, topic, body) VALUES (1, 'partial', '{}')"
        )  # must be rolled back with its savepoint
        raise RuntimeError("bad op")

    bad = store.submit(half_done_then_fail)
    missing = store.enqueue(message("nope"), max_queue=100)
    sql_error = store.submit(lambda tx: tx.conn.execute("INSERT INTO nowhere VALUES (1)"))
    good2 = store.enqueue(message(), max_queue=100)
    release.set()
    held.result(5)
    r1, _ = good1.result(5)
    r2, _ = good2.result(5)
    with pytest.raises(RuntimeError, match="bad op"):
        bad.result(5)
    with pytest.raises(NotFound):
        missing.result(5)
    with pytest.raises(sqlite3.OperationalError):
        sql_error.result(5)
    assert store.stats()["commits"] - before == 2  # the held op's batch, then this one
    assert store.get_message(r1.message_id) is not None
    assert store.get_message(r2.message_id) is not None
    assert store.recent_events(prefix="partial") == []
    assert store.pending_count("i1") == 2


def test_queue_full_inside_one_batch_counts_earlier_ops(store: Store) -> None:
    release, held = hold_writer(store)
    futures = [store.enqueue(message(), max_queue=3) for _ in range(5)]
    release.set()
    held.result(5)
    outcomes = []
    for f in futures:
        try:
            f.result(5)
            outcomes.append("ok")
        except QueueFull:
            outcomes.append("full")
    assert outcomes == ["ok", "ok", "ok", "full", "full"]
    assert store.pending_count("i1") == 3 and store.totals()["queued"] == 3


def test_queue_cap_exact_under_eight_threads(make_store: Callable[..., Store]) -> None:
    s = make_store(batch_max=16)  # small batches: many commits interleave with the checks
    for i in range(3):
        s.create_instance(instance(f"i{i}"))
    cap = 25
    barrier = threading.Barrier(8)
    accepted: list[str] = []
    rejected = 0
    lock = threading.Lock()
    peak = {"i0": 0, "i1": 0, "i2": 0}

    def worker(k: int) -> None:
        nonlocal rejected
        barrier.wait(5)
        for j in range(60):
            iid = f"i{(k + j) % 3}"
            try:
                rec, _ = s.enqueue(message(iid), max_queue=cap).result(10)
            except QueueFull:
                with lock:
                    rejected += 1
                continue
            with lock:
                accepted.append(rec.instance_id)
                peak[iid] = max(peak[iid], s.pending_count(iid))
            if j % 7 == 0:  # some finish, freeing slots while others enqueue
                s.update_message(rec.message_id, "sent").result(10)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert len(accepted) + rejected == 8 * 60
    assert rejected > 0
    for iid in peak:
        pending = s.pending_messages(iid)
        assert len(pending) == s.pending_count(iid) <= cap
        assert peak[iid] <= cap
    assert max(peak.values()) == cap  # the cap is reached, never passed


def test_close_drains_then_refuses(make_store: Callable[..., Store], target: str | Path) -> None:
    s = make_store()
    s.create_instance(instance("i1"))
    futures = [s.enqueue(message(), max_queue=1000) for _ in range(200)]
    s.close()
    assert all(f.done() and f.result()[1] for f in futures)
    late = Store(target)
    late.open()
    try:
        assert late.totals()["queued"] == 200
    finally:
        late.close()
    with pytest.raises(ShuttingDown):
        s.get_message("x")
    with pytest.raises(ShuttingDown):
        s.enqueue(message(), max_queue=10)


def test_flush_waits_for_async_writes(store: Store) -> None:
    store.log_event("x.y", {"n": 1})
    store.save_state("i1", "connecting", since=5.0)
    store.flush(5)
    assert [e["topic"] for e in store.recent_events()] == ["x.y"]
    got = store.get_instance("i1")
    assert got is not None and got.state == "connecting"


def test_cancelled_future_is_skipped(store: Store) -> None:
    release, held = hold_writer(store)
    f = store.enqueue(message(), max_queue=10)
    assert f.cancel()
    release.set()
    held.result(5)
    store.flush(5)
    assert store.totals()["queued"] == 0 and store.pending_count("i1") == 0


def test_sync_write_from_a_done_callback_is_refused(store: Store) -> None:
    seen: list[BaseException] = []
    done = threading.Event()

    def callback(f: Future[Any]) -> None:
        try:
            store.recover_sending()  # would wait on the thread that runs this callback
        except RuntimeError as e:
            seen.append(e)
        done.set()

    store.enqueue(message(), max_queue=10).add_done_callback(callback)
    assert done.wait(5)
    assert "deadlock" in str(seen[0])
    store.flush(5)  # the writer is still alive
    assert store.pending_count("i1") == 1


def test_posted_status_changes_apply_in_order_and_a_refused_one_is_logged(store: Store) -> None:
    """set_status: the send path's writes without a Future. Same order as submitted writes, a
    refused change does not take its batch down with it, and it is logged, not lost silently."""
    from loguru import logger

    from waz_actors.errors import BadRequest

    a = store.enqueue(message(), max_queue=100).result(5)[0]
    b = store.enqueue(message(), max_queue=100).result(5)[0]
    with pytest.raises(BadRequest):
        store.set_status(b.message_id, "delivered-ish")  # refused before it is queued
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(str(m)), level="ERROR")
    try:
        release, held = hold_writer(store)
        store.set_status(a.message_id, "sending", reason="sending")
        store.set_status(a.message_id, "sent", attempts=1, wa_id="W1", reason="sent")
        store.set_status(b.message_id, "sent", reason="queued -> sent is allowed")
        store.set_status(b.message_id, "queued", reason="sent is final: refused in the op")
        release.set()
        held.result(5)
        store.flush(5)
    finally:
        logger.remove(sink)
    got_a = store.get_message(a.message_id)
    assert got_a is not None and (got_a.status, got_a.wa_id) == ("sent", "W1")
    assert [h["status"] for h in store.history(a.message_id)] == ["queued", "sending", "sent"]
    got_b = store.get_message(b.message_id)
    assert got_b is not None and got_b.status == "sent"
    assert any("store write failed" in line and "cannot become queued" in line for line in logged)


def test_a_batch_failed_whole_is_not_run_again(store: Store) -> None:
    """When SQLite rolls a whole batch back (disk full, I/O error), every future of it fails and
    nothing of it may land afterwards. Regression: the optimistic writer took that outcome for
    "retry with savepoints", ran the batch again and committed writes already reported failed."""
    runs: list[int] = []

    def rolls_everything_back(tx: Any) -> None:
        runs.append(1)
        if len(runs) == 1:  # like SQLITE_FULL: SQLite itself ends the transaction
            tx.conn.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")

    release, held = hold_writer(store)
    good = store.enqueue(message(), max_queue=100)
    bad = store.submit(rolls_everything_back)
    release.set()
    held.result(5)
    with pytest.raises(sqlite3.OperationalError):
        bad.result(5)
    with pytest.raises(sqlite3.OperationalError):
        good.result(5)  # its batch was rolled back: not acknowledged
    store.flush(5)
    assert runs == [1]
    assert store.totals()["queued"] == 0  # and not written behind its caller's back


def test_an_error_caught_by_the_wrong_operation_is_still_its_own(store: Store) -> None:
    """On PostgreSQL the optimistic attempt pipelines the batch's statements, so a statement's
    error can surface inside a later operation. One that catches that error class must not
    swallow another's failure: the batch runs again statement by statement, and each outcome
    is its own operation's."""
    store.submit(
        lambda tx: tx.conn.execute("INSERT INTO events (time, topic, body) VALUES (1, 'x', '{}')")
    ).result(5)
    release, held = hold_writer(store)

    def duplicate(tx: Any) -> None:
        tx.conn.execute(
            "INSERT INTO instances SELECT * FROM instances WHERE instance_id = 'i1'"
        )  # a primary key broken: its result is never read

    def careful(tx: Any) -> str:
        try:
            tx.conn.execute("INSERT INTO events (time, topic, body) VALUES (2, 'careful', '{}')")
            row = tx.conn.execute(
                "SELECT count(*) FROM events WHERE topic IN ('x', 'careful')"
            ).fetchone()
            return str(row[0])
        except sqlite3.IntegrityError:
            return "swallowed"

    bad = store.submit(duplicate)
    good = store.submit(careful)
    release.set()
    held.result(5)
    with pytest.raises(sqlite3.IntegrityError):
        bad.result(5)
    assert good.result(5) == "2"
    assert [e["topic"] for e in store.recent_events(prefix="careful")] == ["careful"]


def test_statements_after_a_failed_pipelined_batch_still_run(store: Store) -> None:
    """On PostgreSQL an operation that raises while earlier statements of its batch are still
    in flight in the pipeline ends the pipeline early; the same statements must keep working
    in the retry and in later batches (a pipeline cut off by a partition once left psycopg
    believing statements prepared that the server never prepared: "prepared statement _pg3_N
    does not exist" on every later use; tests/cluster/test_failover.py hit it; a failed
    pipelined attempt now rolls back through psycopg's rollback(), which forgets them)."""

    def fails(tx: Any) -> None:
        raise RuntimeError("refused")

    for _ in range(3):
        release, held = hold_writer(store)
        sends = [store.enqueue(message(), max_queue=1000) for _ in range(8)]
        bad = store.submit(fails)
        release.set()
        held.result(5)
        with pytest.raises(RuntimeError):
            bad.result(5)
        assert all(f.result(5)[1] for f in sends)
    more = [store.enqueue(message(), max_queue=1000) for _ in range(8)]
    assert all(f.result(5)[1] for f in more)
    assert store.pending_count("i1") == 32


class _PipelineBreaksOnExit:
    """A PostgreSQL-like connection (store/pg.py PgConn's surface) whose pipeline raises when
    it is left, as a connection broken right after the fence check failed would."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.in_transaction = False
        self.broken = False
        self.failed = False

    def execute(self, sql: str, params: Any = None) -> Any:
        self.statements.append(sql)
        if sql.startswith("BEGIN"):
            self.in_transaction = True
        elif sql in ("COMMIT", "ROLLBACK"):
            self.in_transaction = False
        return self

    def fetchall(self) -> list[Any]:
        return []

    def sync(self) -> None:
        pass

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    @contextlib.contextmanager
    def pipelined(self) -> Iterator[None]:
        yield
        self.broken = True
        raise Error("server closed the connection unexpectedly")


def test_a_batch_whose_fence_check_failed_is_never_run_again() -> None:
    """Review finding 7: once the fence check failed and the callers were told, a pipeline
    that then breaks on exit must not make the writer retry (and commit) the batch."""
    from waz_actors.store.fencing import Fencing
    from waz_actors.store.writer import Writer

    conn = _PipelineBreaksOnExit()
    checks: list[int] = []

    def epoch_of(instance_id: str) -> int:
        return 1

    fencing = Fencing(epoch_of)

    def refused(c: Any, keys: Any) -> set[Any]:
        checks.append(1)
        if len(checks) == 1:
            raise Error("fence check failed")
        return set()

    fencing.refused = refused  # type: ignore[method-assign]
    writer = Writer(cast(Any, conn), batch_max=10, counters={})
    writer.fencing = fencing
    ran: list[str] = []
    writer.start()
    try:
        fut = writer.submit(lambda tx: ran.append("op"), owner="i1")
        with pytest.raises(Error, match="fence check failed"):
            fut.result(5)
    finally:
        writer.close()  # the batch is done with (or retried) by then
    assert ran == [], "the failed batch's operation ran after its caller was told"
    assert checks == [1]
    assert "COMMIT" not in conn.statements
