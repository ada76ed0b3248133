"""An instance whose owner writes are refused for a stale lease epoch (a cluster node that lost
its lease unseen: a pause, a partition): it stops sending at once, writes nothing again, raises
no storage alarm and leaves its queue in the store for the new owner, and the node hears of it
(Store.fence_writes on_stale), which closes the session.

The real Instance, store writer and sim network (tests/core/harness.py); only the database's
answer to the fence is decided here, as tests/store/store_helpers.FullDisk decides the disk's.
On PostgreSQL the same answer comes from waz_fence_all (tests/store/test_store_fencing.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tests.core.harness import Bench, quick_config
from waz_actors.store.fencing import FenceKey, Fencing
from waz_actors.store.sql import Conn
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M


class TakenOver(Fencing):
    """Every epoch is current until `taken`; from then on every one is refused."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, int | None]] = []
        super().__init__(lambda _iid: 7, lambda i, e: self.heard.append((i, e)))
        self.taken = False

    def refused(self, conn: Conn, keys: Iterable[FenceKey]) -> set[FenceKey]:
        self.checks += 1
        return set(keys) if self.taken else set()


def test_a_fenced_out_instance_stops_sending_and_does_not_retry(tmp_path: Path) -> None:
    b = Bench(tmp_path, quick_config(pacing_interval=1.0, pacing_jitter=0.0))
    try:
        b.create()
        b.run_until(lambda: b.instance is not None and b.instance.state == S.ONLINE, limit=5)
        fence = TakenOver()
        b.store.writer.fencing = fence
        first = b.send("before the takeover")
        b.run_until(lambda: b.status_of(first.message_id) == M.SENT, limit=60)
        assert fence.checks > 0 and fence.heard == []

        fence.taken = True
        later = [b.send(f"m{i}").message_id for i in range(3)]
        b.run(600)  # ten daemon minutes: no retry loop, no send
        assert b.net.delivered_ids("i1") == [first.message_id]
        assert [b.status_of(m) for m in later] == [M.QUEUED] * 3  # there for the new owner
        assert set(fence.heard) == {("i1", 7)}
        alarms = [body["kind"] for topic, body in b.events if topic == "daemon.alarm"]
        assert alarms == []  # not a failing disk
        checks = fence.checks
        b.run(600)
        assert fence.checks == checks  # nothing was written again in the meantime
        # It tried one send, was refused, and stopped: the queue is held, not walked through.
        assert b.instance is not None and b.instance.outbox.saver.fenced
        assert [q.record.message_id for q in b.instance.outbox.queue] == later
    finally:
        b.close()
