import pytest
from hypothesis import given
from hypothesis import strategies as st

from waz_actors.config import ConflictConfig
from waz_actors.policy.conflicts import MAX_CONFLICTS, ConflictHistory, conflict_cooldown


def test_cooldown_starts_at_90_and_doubles_within_the_window() -> None:
    h = ConflictHistory.from_config(ConflictConfig())
    cooldowns = [h.record(t) for t in (0.0, 100.0, 300.0, 700.0, 1500.0, 2000.0)]
    assert cooldowns == [90.0, 180.0, 360.0, 720.0, 1440.0, 1800.0]
    assert h.count(2000.0) == 6


def test_old_conflicts_leave_the_window() -> None:
    h = ConflictHistory(window=3600.0)
    h.record(0.0)
    h.record(100.0)
    assert h.count(3599.0) == 2
    assert h.count(3600.0) == 1
    assert h.record(3700.0) == 90.0  # only this one counts now
    assert h.times() == (3700.0,)  # pruned: bounded memory


def test_brief_online_does_not_reset_history() -> None:
    """Invariant 3: conflict, connect, online 30 s, conflict again -> the cooldown grows.
    There is no way to clear the history but time."""
    h = ConflictHistory()
    assert h.record(0.0) == 90.0
    # ... cooldown 90 s, throttle 180 s, connected at 180 s, online until 210 s ...
    assert h.record(210.0) == 180.0
    assert h.count(210.0) == 2
    assert not hasattr(h, "clear") and not hasattr(h, "reset")


def test_trip_threshold() -> None:
    h = ConflictHistory(trip_threshold=5)
    for i in range(4):
        h.record(float(i))
    assert not h.should_trip(4.0)
    h.record(4.0)
    assert h.should_trip(4.0)
    assert h.snapshot(4.0) == {
        "count": 5,
        "window": 3600.0,
        "last": 4.0,
        "next_cooldown": 1800.0,  # the 6th would be 2880, capped
        "should_trip": True,
    }


def test_restored_times_are_counted_sorted_and_pruned() -> None:
    h = ConflictHistory(times=[500.0, 100.0, -5000.0])
    assert h.times() == (100.0, 500.0)
    assert h.count(600.0) == 2
    assert h.record(600.0) == 360.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 0.0}, "window must be greater than 0"),
        ({"cooldown": -1.0}, "cooldown must not be negative"),
        ({"multiplier": 0.9}, "multiplier must be at least 1"),
        ({"cooldown": 100.0, "cooldown_max": 50.0}, "must not be below cooldown"),
        ({"trip_threshold": 0}, "trip_threshold must be at least 1"),
        ({"times": [1.0, float("nan")]}, r"times\[\] must be a finite number"),
        ({"times": "123"}, "times must be an iterable of numbers"),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConflictHistory(**kwargs)


def test_bad_record_changes_nothing() -> None:
    h = ConflictHistory(times=[1.0])
    with pytest.raises(ValueError, match="now must be a finite number"):
        h.record(float("nan"))
    assert h.times() == (1.0,)


def test_memory_is_bounded_under_a_conflict_flood() -> None:
    h = ConflictHistory()
    for i in range(MAX_CONFLICTS + 50):
        assert h.record(i * 0.001) == 1800.0 or i < 5
    assert len(h.times()) == MAX_CONFLICTS


@given(count=st.integers(1, 5000), cooldown=st.floats(0, 1e4), mult=st.floats(1, 10))
def test_cooldown_capped_and_growing_with_count(count: int, cooldown: float, mult: float) -> None:
    cap = cooldown * 20
    kw = {"cooldown": cooldown, "multiplier": mult, "maximum": cap}
    c = conflict_cooldown(count, **kw)
    nxt = conflict_cooldown(count + 1, **kw)
    assert cooldown <= c <= cap
    assert c <= nxt


@given(st.lists(st.floats(0, 600), min_size=1, max_size=60))
def test_each_conflict_earns_a_cooldown_at_least_as_long_as_the_window_count_says(
    gaps: list[float],
) -> None:
    h = ConflictHistory()
    now = 0.0
    for gap in gaps:
        now += gap
        cooldown = h.record(now)
        n = h.count(now)
        assert cooldown == min(1800.0, 90.0 * 2.0 ** (n - 1))
        assert 90.0 <= cooldown <= 1800.0
