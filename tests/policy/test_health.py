import pytest
from hypothesis import given
from hypothesis import strategies as st

from waz_actors.config import HealthConfig
from waz_actors.policy.health import HealthThresholds, SuccessWindow, assess, recommendations
from waz_actors.types import Health

H, W, C = Health.HEALTHY, Health.WARNING, Health.CRITICAL


@pytest.mark.parametrize(
    ("rate", "queue", "expected"),
    [
        (None, 0, H),  # nothing sent yet counts as a healthy success rate
        (1.0, 9, H),
        (0.81, 9, H),
        (0.8, 0, W),  # "> 80 %" is healthy, exactly 80 % is warning
        (0.6, 0, W),  # 60 % still warning
        (0.5999, 0, C),
        (1.0, 10, W),  # "queue < 10" is healthy, 10 is warning
        (1.0, 19, W),
        (1.0, 20, C),  # "queue < 20" is warning, 20 is critical
        (0.7, 19, W),
        (0.7, 20, C),
        (0.1, 0, C),
        (None, 25, C),
    ],
)
def test_seed_thresholds_at_their_borders(rate: float | None, queue: int, expected: Health) -> None:
    assert assess(rate, queue) is expected
    assert HealthThresholds.from_config(HealthConfig()).assess(rate, queue) is expected


def test_exact_ratios_hit_the_borders() -> None:
    window = SuccessWindow()
    for i in range(10):
        window.record(0.0, ok=i < 8)
    assert window.rate(0.0) == 0.8
    assert assess(window.rate(0.0), 0) is W


@given(st.one_of(st.none(), st.floats(0, 1)), st.integers(0, 100), st.integers(0, 100))
def test_more_queue_never_makes_health_better(rate: float | None, a: int, b: int) -> None:
    rank = {H: 0, W: 1, C: 2}
    lo, hi = sorted((a, b))
    assert rank[assess(rate, lo)] <= rank[assess(rate, hi)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((1.5, 0), "success_rate must be between 0 and 1"),
        ((float("nan"), 0), "success_rate must be a finite number"),
        ((0.9, -1), "queue_depth must be at least 0"),
        ((0.9, 2.5), "queue_depth must be an integer"),
    ],
)
def test_assess_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assess(*args)


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="warning_success must not exceed healthy_success"):
        HealthThresholds(healthy_success=0.5, warning_success=0.6)
    with pytest.raises(ValueError, match="warning_queue must not be below healthy_queue"):
        HealthThresholds(healthy_queue=30, warning_queue=20)


def test_success_window_rolls_over() -> None:
    w = SuccessWindow(window=60.0, buckets=6)  # 10 s buckets
    assert w.rate(0.0) is None and w.counts(0.0) == (0, 0)
    w.record(0.0, ok=True)
    w.record(5.0, ok=False)
    w.record(30.0, ok=True)
    assert w.counts(30.0) == (2, 1)
    assert w.rate(30.0) == pytest.approx(2 / 3)
    assert w.counts(60.0) == (1, 0)  # the first bucket left the window
    assert w.counts(100.0) == (0, 0)
    assert w.rate(100.0) is None


def test_success_window_memory_is_bounded() -> None:
    w = SuccessWindow(window=60.0, buckets=6)
    for i in range(10_000):
        w.record(float(i), ok=i % 2 == 0)
    assert len(w._counts) <= 6
    ok, failed = w.counts(9999.0)
    assert 50 <= ok + failed <= 60


def test_success_window_ignores_outcomes_older_than_the_window() -> None:
    w = SuccessWindow(window=60.0, buckets=6)
    w.record(1000.0, ok=True)
    w.record(10.0, ok=False)  # far in the past: not counted, not stored
    assert w.counts(1000.0) == (1, 0)


def test_success_window_bad_input_changes_nothing() -> None:
    w = SuccessWindow(window=60.0, buckets=6)
    w.record(0.0, ok=True)
    with pytest.raises(ValueError, match="ok must be True or False"):
        w.record(1.0, ok="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now must be a finite number"):
        w.record(float("inf"), ok=True)
    assert w.counts(1.0) == (1, 0)
    with pytest.raises(ValueError, match="buckets must be at least 1"):
        SuccessWindow(buckets=0)
    with pytest.raises(ValueError, match="window must be greater than 0"):
        SuccessWindow(window=-5.0)


def advice(**overrides: object) -> list[str]:
    args: dict = {
        "health": H,
        "success_rate": 1.0,
        "queue_depth": 0,
        "state": "online",
        "conflicts_last_hour": 0,
        "breaker_state": "closed",
        "oldest_age": None,
    }
    args.update(overrides)
    return recommendations(**args)


def test_no_advice_when_all_is_well() -> None:
    assert advice() == []
    assert advice(success_rate=None) == []


def test_advice_follows_the_seed_troubleshooting_list() -> None:
    low = advice(health=C, success_rate=0.5)
    assert len(low) == 1 and "reduce sending frequency" in low[0] and "50%" in low[0]
    backlog = advice(health=W, queue_depth=15)
    assert any("verify session connectivity" in a for a in backlog)
    assert any("another WhatsApp Web session" in a for a in advice(conflicts_last_hour=3))
    assert any("pair again" in a for a in advice(state="logged_out"))
    assert any("instance reset" in a for a in advice(breaker_state="open", state="tripped"))
    assert any("instance reset" in a for a in advice(breaker_state="half_open"))
    assert any("check session connectivity" in a for a in advice(state="backoff", queue_depth=2))
    assert any("start it" in a for a in advice(state="stopped", queue_depth=3))
    assert any("instance.start" in a for a in advice(state="stopped", queue_depth=3))
    cooling = advice(state="cooldown")
    assert len(cooling) == 1 and "no other client uses this number" in cooling[0]
    assert any("ban" in a for a in advice(state="banned"))
    assert any("QR" in a for a in advice(state="pairing"))
    assert any("900 s" in a for a in advice(oldest_age=900.0))
    assert advice(oldest_age=30.0) == []


def test_advice_orders_the_most_urgent_first() -> None:
    out = advice(
        health=C, state="logged_out", breaker_state="open", conflicts_last_hour=2,
        success_rate=0.2, queue_depth=30,
    )  # fmt: skip
    assert "pair again" in out[0] and "circuit breaker" in out[1] and "conflict" in out[2]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"state": "sleeping"}, "state must be one of"),
        ({"breaker_state": "ajar"}, "breaker_state must be one of"),
        ({"health": "great"}, "is not a valid Health"),
        ({"conflicts_last_hour": -1}, "conflicts_last_hour must be at least 0"),
        ({"oldest_age": -3.0}, "oldest_age must not be negative"),
        ({"success_rate": 2.0}, "success_rate must be between 0 and 1"),
    ],
)
def test_advice_bad_input(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        advice(**overrides)


def test_unhealthy_verdict_always_comes_with_some_advice() -> None:
    # Custom thresholds can make a state unhealthy that no specific rule names.
    out = advice(health=W)
    assert out == ["Check the queue status and the instance's recent state changes."]
