import pytest
from hypothesis import given
from hypothesis import strategies as st

from waz_actors.config import ConnectionConfig
from waz_actors.policy.throttle import ConnectThrottle


def test_first_attempt_is_allowed_at_once() -> None:
    t = ConnectThrottle.from_config(ConnectionConfig())
    assert t.gap(0.0) == 60.0 and t.next_allowed(5.0) == 5.0 and t.allowed(5.0)


def test_sixty_seconds_between_attempts() -> None:
    t = ConnectThrottle()
    t.record_attempt(100.0)
    assert not t.allowed(159.9)
    assert t.next_allowed(120.0) == 160.0
    assert t.allowed(160.0)


def test_gap_grows_to_120_after_more_than_two_attempts() -> None:
    t = ConnectThrottle()
    for now in (0.0, 60.0):
        t.record_attempt(now)
    assert t.gap(60.0) == 60.0  # two attempts: not more than the threshold
    t.record_attempt(120.0)
    assert t.attempts_in_window(120.0) == 3
    assert t.gap(120.0) == 120.0 and t.next_allowed(120.0) == 240.0
    # Once the old attempts leave the hour window the gap shrinks back.
    assert t.attempts_in_window(3600.0 + 60.0) == 1
    assert t.gap(3600.0 + 60.0) == 60.0


def test_conflict_means_180_seconds_counted_from_the_conflict() -> None:
    t = ConnectThrottle()
    t.record_attempt(0.0)
    t.record_conflict(1000.0)  # was online for a while, then 440
    assert t.gap(1000.0) == 180.0
    assert t.next_allowed(1000.0) == 1180.0  # not "last attempt + 180", long past
    assert not t.allowed(1179.0) and t.allowed(1180.0)
    t.record_attempt(1180.0)  # the attempt after it: the conflict is no longer the latest
    assert t.gap(1180.0) == 60.0
    snap = t.snapshot(1200.0)
    assert snap == {
        "gap": 60.0,
        "attempts_in_window": 2,
        "last_attempt": 1180.0,
        "last_conflict": None,
        "next_allowed": 1240.0,
        "allowed": False,
    }


def test_conflict_outside_window_is_forgotten() -> None:
    t = ConnectThrottle(window=600.0)
    t.record_conflict(0.0)
    assert t.gap(599.0) == 180.0
    assert t.gap(600.0) == 60.0 and t.allowed(600.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": -1.0}, "base must not be negative"),
        ({"window": 0.0}, "window must be greater than 0"),
        ({"attempts_threshold": 1.5}, "attempts_threshold must be an integer"),
        ({"after_conflict": float("inf")}, "after_conflict must be a finite number"),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectThrottle(**kwargs)


def test_bad_times_change_nothing() -> None:
    t = ConnectThrottle()
    t.record_attempt(10.0)
    before = t.snapshot(20.0)
    for bad in (float("nan"), "soon", None):
        with pytest.raises(ValueError, match="now must be a finite number"):
            t.record_attempt(bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="now must be a finite number"):
            t.record_conflict(bad)  # type: ignore[arg-type]
    assert t.snapshot(20.0) == before


@given(
    st.lists(
        st.tuples(st.floats(0, 400), st.sampled_from(["try", "try", "conflict"])), max_size=150
    )
)
def test_never_two_attempts_closer_than_60s(events: list[tuple[float, str]]) -> None:
    """A caller that only attempts when allowed() never dials twice within 60 s, and never
    within 180 s of a conflict."""
    t = ConnectThrottle()
    now = 0.0
    attempts: list[float] = []
    last_conflict: float | None = None
    for dt, kind in events:
        now += dt
        if kind == "conflict":
            t.record_conflict(now)
            last_conflict = now
        elif t.allowed(now):
            if attempts:
                assert now - attempts[-1] >= 60.0 - 1e-6
            if last_conflict is not None:
                assert now - last_conflict >= 180.0 - 1e-6  # first attempt after the conflict
            last_conflict = None
            t.record_attempt(now)
            attempts.append(now)
    # Memory stays bounded to the window.
    assert len(t._attempts) <= 3600 / 60 + 1
