import pytest
from hypothesis import given
from hypothesis import strategies as st

from waz_actors.config import BreakerConfig
from waz_actors.policy.breaker import BreakerState, CircuitBreaker


def fail(b: CircuitBreaker, now: float, n: int) -> list[bool]:
    return [b.record_failure(now, "timeout") for _ in range(n)]


def test_trips_after_more_than_five_failures() -> None:
    b = CircuitBreaker.from_config(BreakerConfig())
    assert fail(b, 0.0, 5) == [False] * 5
    assert b.state is BreakerState.CLOSED and b.allow(0.0)
    assert b.record_failure(1.0, "timeout") is True  # the 6th
    assert b.state is BreakerState.OPEN
    assert b.trips == 1 and b.opened_at == 1.0 and b.last_reason == "timeout"
    assert not b.allow(1.0)


def test_success_resets_consecutive_count() -> None:
    b = CircuitBreaker()
    fail(b, 0.0, 5)
    b.record_success(1.0)
    assert b.consecutive_failures == 0
    assert fail(b, 2.0, 5) == [False] * 5
    assert b.state is BreakerState.CLOSED


def test_one_probe_after_reset_timeout_then_success_closes() -> None:
    b = CircuitBreaker(failure_threshold=0, reset_timeout=300.0)
    assert b.record_failure(10.0)
    assert b.next_probe_at() == 310.0
    assert not b.allow(309.9)
    assert b.allow(310.0)  # the probe
    assert b.state is BreakerState.HALF_OPEN and b.next_probe_at() is None
    assert not b.allow(310.0) and not b.allow(10_000.0)  # only one probe in flight
    b.record_success(320.0)
    assert b.state is BreakerState.CLOSED and b.allow(321.0)
    assert b.trips == 1  # kept: flapping instances wait longer next time


def test_failed_probe_reopens_with_growing_then_capped_timeout() -> None:
    b = CircuitBreaker(failure_threshold=0, reset_timeout=300.0, reset_timeout_max=1000.0)
    b.record_failure(0.0)
    now, waits = 0.0, []
    for _ in range(4):
        probe_at = b.next_probe_at()
        assert probe_at is not None
        waits.append(probe_at - now)
        now = probe_at
        assert b.allow(now)
        assert b.record_failure(now, "probe failed") is True
    assert waits == [300.0, 600.0, 1000.0, 1000.0]
    assert b.state is BreakerState.OPEN and b.trips == 5


def test_flapping_keeps_trip_count_until_a_long_clean_period() -> None:
    b = CircuitBreaker(failure_threshold=0, reset_timeout=100.0, reset_timeout_max=3600.0)
    b.record_failure(0.0)
    assert b.allow(100.0)
    b.record_success(100.0)
    b.record_failure(200.0)  # trips again soon after: second trip, doubled timeout
    assert b.trips == 2 and b.next_probe_at() == 400.0
    assert b.allow(400.0)
    b.record_success(400.0)
    b.record_success(400.0 + 3599.0)
    assert b.trips == 2
    b.record_success(400.0 + 3600.0)  # closed for clean_period (= reset_timeout_max)
    assert b.trips == 0
    b.record_failure(5000.0)
    assert b.trips == 1 and b.next_probe_at() == 5100.0


def test_forced_trip_and_operator_reset() -> None:
    b = CircuitBreaker(reset_timeout=300.0)
    b.trip(50.0, "conflict storm")
    snap = b.snapshot(60.0)
    assert snap == {
        "state": "open",
        "consecutive_failures": 0,
        "trips": 1,
        "opened_at": 50.0,
        "next_probe_at": 350.0,
        "reset_timeout": 300.0,
        "reason": "conflict storm",
    }
    b.trip(100.0, "restart intensity")  # re-trip restarts the timer, does not escalate
    assert b.trips == 1 and b.next_probe_at() == 400.0 and b.last_reason == "restart intensity"
    b.record_success(120.0)  # stale success while OPEN does not close it
    assert b.state is BreakerState.OPEN
    b.reset()
    assert b.snapshot(130.0)["state"] == "closed"
    assert (b.trips, b.consecutive_failures, b.opened_at, b.last_reason) == (0, 0, None, "")
    assert b.allow(130.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": -1}, "failure_threshold must be at least 0"),
        ({"reset_timeout": 0.0}, "reset_timeout must be greater than 0"),
        ({"reset_timeout": 10.0, "reset_timeout_max": 5.0}, "must not be below"),
        ({"reset_multiplier": 0.5}, "reset_multiplier must be at least 1"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kwargs)


def test_bad_calls_change_nothing() -> None:
    b = CircuitBreaker(failure_threshold=0)
    before = b.snapshot(0.0)
    with pytest.raises(ValueError, match="now must be a finite number"):
        b.record_failure(float("nan"))
    with pytest.raises(ValueError, match="reason must be a string"):
        b.record_failure(1.0, reason=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now must be a finite number"):
        b.allow(float("inf"))
    assert b.snapshot(0.0) == before


ops = st.lists(
    st.tuples(st.sampled_from(["allow", "ok", "fail", "trip", "reset"]), st.floats(0, 500)),
    max_size=200,
)


@given(ops)
def test_never_two_probes_at_once(sequence: list[tuple[str, float]]) -> None:
    """Random traffic: while a probe is out, no second attempt is allowed; OPEN never allows
    before its probe time; CLOSED always allows."""
    b = CircuitBreaker(failure_threshold=2, reset_timeout=100.0, reset_timeout_max=400.0)
    now = 0.0
    probe_out = False
    for op, dt in sequence:
        now += dt
        if op == "allow":
            state, probe_at = b.state, b.next_probe_at()
            allowed = b.allow(now)
            if state is BreakerState.CLOSED:
                assert allowed
            elif state is BreakerState.HALF_OPEN:
                assert not allowed
            else:
                assert probe_at is not None
                assert allowed == (now + 1e-9 >= probe_at)
            if allowed and state is BreakerState.OPEN:
                assert not probe_out
                probe_out = True
        elif op == "ok":
            b.record_success(now)
        elif op == "fail":
            b.record_failure(now, "x")
        elif op == "trip":
            b.trip(now, "forced")
        else:
            b.reset()
        if b.state is not BreakerState.HALF_OPEN:
            probe_out = False
        assert b.trips >= 0 and b.consecutive_failures >= 0
        if b.state is BreakerState.OPEN:
            assert 100.0 <= b.current_reset_timeout() <= 400.0
