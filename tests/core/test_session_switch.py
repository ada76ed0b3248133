"""The session switches (actors/sessions.py): a fence closes an instance's session from another
thread without its actor, and that actor never opens one again, whatever it is told; a session
opens only while `may_run` (the cluster node holds the lease) says so.

The real Instance, store and sim network (tests/core/harness.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.core.harness import Bench
from waz_actors.actors.instance import Instance
from waz_actors.actors.messages import Pair, Reset, Restart, Start
from waz_actors.types import InstanceState as S


def live(b: Bench) -> list[str]:
    return b.net.instance_ids(live_only=True)


def test_a_tripped_switch_closes_the_session_from_another_thread_and_for_good(
    tmp_path: Path,
) -> None:
    b = Bench(tmp_path)
    try:
        inst = b.create()
        b.run_until(lambda: inst.state == S.ONLINE, limit=60)
        assert live(b) == ["i1"]
        closed: list[int] = []
        t = threading.Thread(target=lambda: closed.append(b.deps.sessions.trip(["i1", "nobody"])))
        t.start()
        t.join(5)
        assert closed == [1]  # one session was open; an unknown id is no matter
        assert live(b) == []  # closed before the actor handled anything
        assert b.deps.sessions.trip(["i1"]) == 0  # idempotent
        # Whatever the actor does next opens nothing: the liveness check, a restart, a reset,
        # a pairing request (the sim's pairing code connects first).
        b.run(600.0)
        for cmd in (Restart, Reset, Start):
            b.command(cmd)
            b.run(60.0)
        b.command(Pair, phone="6281234567890")
        b.run(600.0)
        assert live(b) == []
        assert b.net.stats()["totals"]["conflicts_caused_by_ours"] == 0
    finally:
        b.store.close()


def test_a_session_opens_only_while_may_run_says_so(tmp_path: Path) -> None:
    b = Bench(tmp_path)
    held = {"i1": False}
    b.deps.sessions.may_run = lambda iid: held.get(iid, False)
    try:
        inst = b.create()
        b.run(60.0)
        assert live(b) == [] and inst.connection.driver is None
        # A new actor (the lease taken again): a fresh switch, untripped, and may_run says yes.
        held["i1"] = True
        b.deps.sessions.trip(["i1"])  # the old actor's switch, tripped
        b.command(Start)
        b.run(60.0)
        assert live(b) == []  # the old actor stays closed
        inst.shutdown()
        fresh = Instance(b.deps, b.store.get_instance("i1"), b.inbox.append)  # type: ignore[arg-type]
        b.instance = fresh
        fresh.boot()
        b.run_until(lambda: fresh.state == S.ONLINE, limit=60)
        assert live(b) == ["i1"]
        assert len(b.deps.sessions) == 1  # the old actor's switch was forgotten at shutdown
    finally:
        b.store.close()


class _Recorded:
    """A sim driver that records whether it was released (whatsmeow frees its host slot)."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def disconnect(self) -> None:
        self._calls.append("disconnect")
        self._inner.disconnect()

    def release(self) -> None:
        self._calls.append("release")


def _recording(b: Bench) -> tuple[list[str], list[str]]:
    built: list[str] = []
    calls: list[str] = []
    make = b.deps.drivers["sim"]

    def factory(ctx: Any) -> Any:
        built.append(ctx.instance_id)
        return _Recorded(make(ctx), calls)

    b.deps.drivers["sim"] = factory
    return built, calls


def test_no_driver_is_built_while_this_node_does_not_hold_the_lease(tmp_path: Path) -> None:
    """Review finding 8: building a whatsmeow driver takes a host slot (and may start a
    host), so a connect the switch would refuse builds nothing."""
    b = Bench(tmp_path)
    built, _ = _recording(b)
    b.deps.sessions.may_run = lambda iid: False
    try:
        inst = b.create()
        b.run(120.0)
        assert inst.connection.driver is None and live(b) == []
        assert built == []
    finally:
        b.store.close()


def test_a_driver_refused_by_the_switch_is_closed_and_released(tmp_path: Path) -> None:
    """The lease lost between the actor's question and the switch's: the driver built for
    nothing is disconnected and gives its slot back."""
    b = Bench(tmp_path)
    built, calls = _recording(b)
    answers = iter([True])  # the first question yes, every later one no
    b.deps.sessions.may_run = lambda iid: next(answers, False)
    try:
        inst = b.create()
        b.run(60.0)
        assert inst.connection.driver is None and live(b) == []
        assert built == ["i1"]
        assert calls == ["disconnect", "release"]
    finally:
        b.store.close()
