from __future__ import annotations

from waz_actors.config import ConnectionConfig
from waz_actors.policy.liveness import Liveness


def test_dead_after_three_keepalives_of_silence_with_sends_pending() -> None:
    live = Liveness.from_config(ConnectionConfig(keepalive=10.0))
    live.progress(0.0)
    assert live.check(29.0, online=True, pending=True) == (False, 1.0)
    assert live.check(30.0, online=True, pending=True) == (True, 30.0)
    assert live.recycles == 1
    # the clock restarts after a verdict: no second recycle right away
    assert live.check(31.0, online=True, pending=True) == (False, 29.0)


def test_progress_restarts_the_clock() -> None:
    live = Liveness(keepalive=10.0)
    live.progress(0.0)
    live.progress(25.0)
    assert live.check(40.0, online=True, pending=True) == (False, 15.0)


def test_idle_or_offline_is_never_dead() -> None:
    live = Liveness(keepalive=10.0)
    assert live.check(1000.0, online=True, pending=False) == (False, 30.0)
    assert live.check(5000.0, online=False, pending=True) == (False, 30.0)
    # pending starts now: the silence counts from the last idle check, not from 0
    assert live.check(5010.0, online=True, pending=True) == (False, 20.0)
    assert live.recycles == 0
