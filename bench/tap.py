"""The webhook tap's cost on the send path, in-process: CPU per message of a store alone
(messages enqueued, then sending, then sent: three status events each), with no webhook and
with N webhooks subscribed to everything, alternating in the same run. No worker, no receiver:
only what the daemon's group commit pays. Prints µs of process CPU per message; then, with
webhooks, the CPU of applying the worker's writes per message (its fan-out of those events
into delivery rows, then every delivery's outcome, `delivered`, in looks of 200), as the
daemon's writer does (store/webhook_outbox.py `apply`).

    .venv/bin/python bench/tap.py --messages 3000 --rounds 3 --webhooks 10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: its http.py would shadow the standard library's

from waz_actors.store import InstanceRecord, MessageRecord, Store  # noqa: E402
from waz_actors.store.webhook_outbox import Attempt, Outbox, Write  # noqa: E402
from waz_actors.store.webhooks import WebhookRecord  # noqa: E402


def applying(store: Store, db: Path) -> float:
    """CPU seconds of the store's writer applying the worker's writes (the plans are made
    outside the measured time, as the worker makes them in its own process)."""
    outbox = Outbox.open(db)
    spent = 0.0
    try:
        while (fan := outbox.plan(200, 100000)) is not None:
            cpu0 = time.process_time()
            store.webhooks.apply(Write(fan=fan)).result(60)
            spent += time.process_time() - cpu0
        seqs = [d.seq for d in outbox.load_pending(0, 10**9)]
        for i in range(0, len(seqs), 200):
            now = time.time()
            attempts = [
                Attempt(q, "delivered", None, 200, None, b"ok", now, None)
                for q in seqs[i : i + 200]
            ]
            cpu0 = time.process_time()
            store.webhooks.apply(Write(attempts=attempts)).result(60)
            spent += time.process_time() - cpu0
    finally:
        outbox.close()
    return spent


def one(webhooks: int, messages: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "waz.db")
        store.open()
        try:
            now = time.time()
            inst = InstanceRecord(
                instance_id="i1", tenant="t1", driver="sim", settings={}, desired="running",
                state="stopped", since=now, jid=None, last_code=None, last_reason=None,
                created_at=now,
            )  # fmt: skip
            store.create_instance(inst)
            for k in range(webhooks):
                rec = WebhookRecord(
                    f"wh_{k}", "t1", f"http://127.0.0.1:9/{k}", ("*",), "s" * 20, True, None, now
                )
                store.webhooks.create_webhook(rec).result(5)
            ids = [f"m{i}" for i in range(messages)]
            cpu0 = time.process_time()
            futs = []
            for mid in ids:
                rec2 = MessageRecord(
                    message_id=mid, instance_id="i1", tenant="t1", to="5511999999999",
                    text="hello", media=None, status="queued", attempts=0, last_error=None,
                    wa_id=None, idempotency_key=None, created_at=now, updated_at=now,
                    expires_at=None,
                )  # fmt: skip
                futs.append(store.enqueue(rec2, max_queue=messages + 1))
            for f in futs:
                f.result(60)
            for status in ("sending", "sent"):
                for mid in ids:
                    store.set_status(mid, status, reason="bench")
                store.flush(60)
            tap = 1e6 * (time.process_time() - cpu0) / messages
            return tap, 1e6 * applying(store, Path(d) / "waz.db") / messages if webhooks else 0.0
        finally:
            store.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--webhooks", type=int, default=10)
    a = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    without, with_, writes = [], [], []
    for r in range(a.rounds):
        without.append(one(0, a.messages)[0])
        tap, applied = one(a.webhooks, a.messages)
        with_.append(tap)
        writes.append(applied)
        print(
            f"round {r + 1}: {without[-1]:.0f} -> {tap:.0f} us CPU/message;"
            f" applying the worker's writes {applied:.0f} us/message"
        )
    w0, w1, ap = (sorted(x)[len(x) // 2] for x in (without, with_, writes))
    print(
        f"median: {w0:.0f} us without, {w1:.0f} us with {a.webhooks} webhooks (+{w1 - w0:.0f});"
        f" applying the worker's writes {ap:.0f} us/message"
    )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
