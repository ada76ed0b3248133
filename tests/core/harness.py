"""A deterministic bench for the plain Instance: FakeClock, ManualScheduler, real Store (SQLite
file), the real in-process SimNetwork. Messages the instance posts to itself are delivered by
`settle()`, in order, as its actor would."""

from __future__ import annotations

import dataclasses
import random
import time
from concurrent.futures import wait
from pathlib import Path
from typing import Any

from waz_actors.actors.board import StatusBoard
from waz_actors.actors.gate import ConnectGate
from waz_actors.actors.instance import Instance, InstanceDeps
from waz_actors.clock import FakeClock, ManualScheduler
from waz_actors.config import Config
from waz_actors.drivers.sim.driver import make_sim_factory
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.events import EventBus
from waz_actors.store import Store
from waz_actors.store.records import InstanceRecord, MessageRecord
from waz_actors.types import MessageStatus, new_message_id


class Bench:
    def __init__(self, tmp: Path, cfg: Config | None = None, *, seed: int = 1) -> None:
        self.cfg = cfg or Config()
        self.clock = FakeClock()
        self.sched = ManualScheduler(self.clock)
        self.store = Store(tmp / "bench.db")
        self.store.open()
        self.bus = EventBus()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.bus.subscribe("", lambda t, b: self.events.append((t, dict(b))))
        self.board = StatusBoard()
        self.net = SimNetwork(
            self.sched,
            self.clock,
            connect_latency=0.5,
            send_latency=0.2,
            lost_ack_delivery_rate=0.0,
            rand=random.Random(seed),
        )
        self.deps = InstanceDeps(
            cfg=self.cfg,
            clock=self.clock,
            scheduler=self.sched,
            store=self.store,
            bus=self.bus,
            board=self.board,
            gate=ConnectGate(1000.0),
            drivers={"sim": make_sim_factory(self.net)},
        )
        self.inbox: list[object] = []
        self.instance: Instance | None = None

    def create(self, instance_id: str = "i1", desired: str = "running") -> Instance:
        now = time.time()
        rec = InstanceRecord(
            instance_id, "t1", "sim", {}, desired, "stopped", now, None, None, None, now
        )
        self.store.create_instance(rec)
        self.instance = Instance(self.deps, rec, self.inbox.append)
        self.instance.boot()
        self.settle()
        return self.instance

    def settle(self) -> None:
        """Deliver what the instance posted to itself, including the store's answers to its
        writes (posted from the writer thread once they commit or fail), until it is quiet."""
        assert self.instance is not None
        while True:
            while self.inbox:
                self.instance.handle(self.inbox.pop(0))
            # The writer answers in order: once a write submitted now is done, every earlier
            # write's answer is in the inbox. It may fail (a full disk): that is no matter here.
            wait([self.store.submit(lambda tx: None)], timeout=5)
            if not self.inbox:
                return

    def run(self, seconds: float) -> None:
        """Advance daemon time timer by timer, delivering what each one posts before the next."""
        end = self.clock.now() + seconds
        self.settle()
        while True:
            due = self.sched.next_due()
            if due is None or due > end:
                break
            self.sched.advance(max(0.0, due - self.clock.now()))
            self.settle()
        if end > self.clock.now():
            self.clock.advance(end - self.clock.now())
        self.settle()

    def run_until(self, pred: Any, limit: float = 3600.0) -> float:
        """Run timer by timer until `pred()` holds; returns the daemon time it took."""
        start = self.clock.now()
        self.settle()
        while not pred():
            due = self.sched.next_due()
            if due is None or due - start > limit:
                raise AssertionError(f"condition not met within {limit} daemon seconds")
            self.sched.advance(max(0.0, due - self.clock.now()))
            self.settle()
        return self.clock.now() - start

    def command(self, kind: type, **args: Any) -> Any:
        """Hand the instance an operator command of type `kind` (Start, Pair, ...) with a
        reply Future, as the Fleet does; returns the Future."""
        from concurrent.futures import Future

        assert self.instance is not None
        f: Future[Any] = Future()
        self.instance.handle(kind(**args, reply=f))
        self.settle()
        return f

    def send(self, text: str = "hi", instance_id: str = "i1") -> MessageRecord:
        now = time.time()
        rec = MessageRecord(
            new_message_id(),
            instance_id,
            "t1",
            "6281234567890",
            text,
            None,
            str(MessageStatus.QUEUED),
            0,
            None,
            None,
            None,
            now,
            now,
            None,
        )
        stored, _ = self.store.enqueue(rec, max_queue=self.cfg.queue.max_size).result(5)
        from waz_actors.actors.messages import Submit

        assert self.instance is not None
        self.instance.handle(Submit(stored))
        self.settle()
        return stored

    def status_of(self, message_id: str) -> str:
        self.flush()
        rec = self.store.get_message(message_id)
        assert rec is not None
        return rec.status

    def flush(self) -> None:
        # A write submitted now commits after every earlier one (one writer, FIFO).
        self.store.flush(5)

    def stats(self, instance_id: str = "i1") -> dict[str, Any]:
        return self.net.stats()["instances"].get(instance_id, {})

    def states(self) -> list[str]:
        return [b["state"] for t, b in self.events if t.endswith(".state")]

    def close(self) -> None:
        if self.instance is not None:
            self.instance.shutdown()
        self.store.close()


def quick_config(**queue: Any) -> Config:
    cfg = Config()
    return dataclasses.replace(cfg, queue=dataclasses.replace(cfg.queue, **queue))
