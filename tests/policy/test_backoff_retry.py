import pytest
from hypothesis import given
from hypothesis import strategies as st

from waz_actors.config import ConnectionConfig, QueueConfig
from waz_actors.policy.backoff import BackoffPolicy, compute_backoff
from waz_actors.policy.retry import RetryPolicy, retry_delay, should_retry

KW = {"initial": 5.0, "multiplier": 2.0, "maximum": 300.0}


def test_backoff_doubles_from_initial_and_caps() -> None:
    assert [compute_backoff(a, **KW) for a in range(1, 9)] == [
        5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0,
    ]  # fmt: skip


def test_backoff_huge_attempt_does_not_overflow() -> None:
    assert compute_backoff(10_000, **KW) == 300.0


def test_backoff_jitter_spreads_both_ways_but_respects_cap() -> None:
    assert compute_backoff(1, **KW, jitter=0.2, rand=lambda: 0.0) == pytest.approx(4.0)
    assert compute_backoff(1, **KW, jitter=0.2, rand=lambda: 1.0) == pytest.approx(6.0)
    assert compute_backoff(9, **KW, jitter=0.2, rand=lambda: 1.0) == 300.0
    # A rand() that misbehaves is clamped, not trusted.
    assert compute_backoff(1, **KW, jitter=0.2, rand=lambda: 7.0) == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempt": 0}, "attempt must be at least 1"),
        ({"attempt": 1.5}, "attempt must be an integer"),
        ({"initial": -1.0}, "initial must not be negative"),
        ({"maximum": float("nan")}, "maximum must be a finite number"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
    ],
)
def test_backoff_bad_input_is_a_clear_error(kwargs: dict, message: str) -> None:
    args = {"attempt": 1, **KW, **kwargs}
    with pytest.raises(ValueError, match=message):
        compute_backoff(**args)


@given(
    attempt=st.integers(1, 2000),
    initial=st.floats(0, 1e4),
    multiplier=st.floats(1, 10),
    maximum=st.floats(0, 1e6),
    jitter=st.floats(0, 1),
    r=st.floats(0, 1),
)
def test_backoff_never_exceeds_cap_and_is_not_negative(
    attempt: int, initial: float, multiplier: float, maximum: float, jitter: float, r: float
) -> None:
    d = compute_backoff(
        attempt, initial=initial, multiplier=multiplier, maximum=maximum, jitter=jitter,
        rand=lambda: r,
    )  # fmt: skip
    assert 0.0 <= d <= maximum


@given(
    attempt=st.integers(1, 2000),
    initial=st.floats(0, 1e4),
    multiplier=st.floats(1, 10),
    maximum=st.floats(0, 1e6),
)
def test_backoff_without_jitter_is_monotone(
    attempt: int, initial: float, multiplier: float, maximum: float
) -> None:
    kw = {"initial": initial, "multiplier": multiplier, "maximum": maximum}
    assert compute_backoff(attempt, **kw) <= compute_backoff(attempt + 1, **kw)


def test_backoff_policy_from_config_uses_seed_values() -> None:
    policy = BackoffPolicy.from_config(ConnectionConfig())
    assert (policy.initial, policy.multiplier, policy.maximum) == (5.0, 2.0, 300.0)
    assert policy.delay(2, rand=lambda: 0.5) == 10.0
    with pytest.raises(ValueError, match="jitter"):
        BackoffPolicy.from_config(ConnectionConfig(backoff_jitter=3.0))


def test_retry_delays_are_5_10_20() -> None:
    assert [retry_delay(a) for a in (1, 2, 3)] == [5.0, 10.0, 20.0]


def test_three_retries_mean_four_attempts() -> None:
    assert [should_retry(n, max_retries=3, permanent=False) for n in (1, 2, 3, 4, 5)] == [
        True, True, True, False, False,
    ]  # fmt: skip
    assert not should_retry(1, max_retries=3, permanent=True)
    assert not should_retry(1, max_retries=0, permanent=False)


@pytest.mark.parametrize(
    ("attempts", "max_retries", "message"),
    [(0, 3, "attempts must be at least 1"), (1, -1, "max_retries must be at least 0")],
)
def test_should_retry_bad_input(attempts: int, max_retries: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        should_retry(attempts, max_retries=max_retries, permanent=False)


def test_retry_policy_from_config() -> None:
    policy = RetryPolicy.from_config(QueueConfig())
    assert policy.max_attempts == 4
    assert [policy.delay(a) for a in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert policy.should_retry(3, permanent=False)
    assert not policy.should_retry(4, permanent=False)
    with pytest.raises(ValueError, match="multiplier must be at least 1"):
        RetryPolicy.from_config(QueueConfig(retry_multiplier=0.5))
