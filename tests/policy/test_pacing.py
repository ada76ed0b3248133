import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waz_actors.config import QueueConfig
from waz_actors.policy.pacing import Pacer


def test_one_message_per_two_seconds_without_jitter() -> None:
    p = Pacer(interval=2.0, burst=1, jitter=0.0)
    assert p.delay(0.0) == 0.0 and p.take(0.0)
    assert not p.take(0.5)
    assert p.delay(0.5) == pytest.approx(1.5)
    assert not p.take(1.999)
    assert p.take(2.0)
    assert p.delay(2.0) == pytest.approx(2.0)


def test_jitter_only_lengthens_the_interval() -> None:
    p = Pacer(interval=2.0, jitter=0.25, rand=lambda: 1.0)
    assert p.take(0.0)
    assert p.delay(0.0) == pytest.approx(2.5)
    q = Pacer(interval=2.0, jitter=0.25, rand=lambda: 0.0)
    assert q.take(0.0)
    assert q.delay(0.0) == pytest.approx(2.0)


def test_burst_refills_one_token_per_interval_up_to_burst() -> None:
    p = Pacer(interval=1.0, burst=3, jitter=0.0)
    assert [p.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert p.tokens(1.0) == 1 and p.tokens(2.5) == 2 and p.tokens(100.0) == 3
    assert p.snapshot(100.0) == {"interval": 1.0, "burst": 3, "tokens": 3, "delay": 0.0}


def test_zero_interval_is_unlimited() -> None:
    p = Pacer(interval=0.0)
    assert all(p.take(0.0) for _ in range(1000))
    assert p.delay(0.0) == 0.0


def test_from_config_seed_values() -> None:
    p = Pacer.from_config(QueueConfig(), rand=lambda: 0.0)
    assert (p.interval, p.burst, p.jitter) == (2.0, 1, 0.25)


def test_clock_going_backwards_never_releases_early() -> None:
    p = Pacer(interval=2.0, jitter=0.0)
    assert p.take(10.0)
    assert not p.take(0.0)
    assert p.delay(5.0) == pytest.approx(2.0)  # counted from the latest time seen


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": -1.0}, "interval must not be negative"),
        ({"burst": 0}, "burst must be at least 1"),
        ({"jitter": float("nan")}, "jitter must be a finite number"),
        ({"rand": 0.5}, "rand must be callable"),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Pacer(**kwargs)


def test_bad_now_changes_nothing() -> None:
    p = Pacer(interval=2.0, jitter=0.0)
    with pytest.raises(ValueError, match="now must be a finite number"):
        p.take(float("nan"))
    assert p.tokens(0.0) == 1 and p.take(0.0)


@given(
    interval=st.floats(0.01, 10),
    burst=st.integers(1, 5),
    jitter=st.floats(0, 1),
    draws=st.lists(st.floats(0, 1), min_size=1, max_size=20),
    polls=st.lists(st.floats(0, 5), min_size=1, max_size=200),
)
def test_never_faster_than_the_rate_over_any_window(
    interval: float, burst: int, jitter: float, draws: list[float], polls: list[float]
) -> None:
    """A greedy sender (polls at random times, sends whenever allowed): in every window of
    length W at most burst + W / interval messages go out."""
    it = iter(draws * 1000)
    p = Pacer(interval=interval, burst=burst, jitter=jitter, rand=lambda: next(it))
    now, sent = 0.0, []
    for dt in polls:
        now += dt
        while p.take(now):
            sent.append(now)
        assert p.delay(now) > 0
    for i in range(len(sent)):
        for j in range(i, len(sent)):
            width = sent[j] - sent[i]
            assert j - i + 1 <= burst + math.floor(width / interval + 1e-6)


@given(
    interval=st.floats(0.01, 10),
    jitter=st.floats(0, 1),
    r=st.floats(0, 1),
    n=st.integers(2, 200),
)
def test_a_waiting_sender_keeps_the_jittered_rhythm(
    interval: float, jitter: float, r: float, n: int
) -> None:
    """A sender that sleeps exactly delay() each time sends every interval * (1 + jitter * r)."""
    p = Pacer(interval=interval, burst=1, jitter=jitter, rand=lambda: r)
    now = 0.0
    times = []
    for _ in range(n):
        now += p.delay(now)
        assert p.take(now)
        times.append(now)
    span = times[-1] - times[0]
    assert span == pytest.approx((n - 1) * interval * (1 + jitter * r), rel=1e-9)
