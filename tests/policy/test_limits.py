"""policy/limits.py: token buckets per caller and the log limiter (issue 11 items 9 and 11)."""

from __future__ import annotations

import pytest

from waz_actors.policy.limits import LogLimiter, RateLimits, TokenBucket


def test_bucket_burst_then_rate() -> None:
    b = TokenBucket.full(rate=10.0, burst=3.0, now=0.0)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.1)  # one token comes back in 1/rate s
    assert b.take(0.05) == pytest.approx(0.05)
    assert b.take(0.1) == 0.0
    assert b.take(100.0) == 0.0 and b.tokens == pytest.approx(2.0)  # refills to burst, no more


def test_rate_limits_per_key_and_off() -> None:
    r = RateLimits(1.0, 2)
    assert r.take("a", 0.0) == 0.0 and r.take("a", 0.0) == 0.0
    assert r.take("a", 0.0) == pytest.approx(1.0)
    assert r.take("b", 0.0) == 0.0  # another token has its own bucket
    off = RateLimits(0.0, 1)
    assert all(off.take("a", 0.0) == 0.0 for _ in range(1000)) and len(off) == 0
    with pytest.raises(ValueError):
        RateLimits(-1.0, 1)
    with pytest.raises(ValueError):
        RateLimits(1.0, 0)


def test_rate_limits_memory_is_bounded() -> None:
    r = RateLimits(1.0, 1, max_keys=100)
    for i in range(1000):
        r.take(f"k{i}", float(i) * 0.001)
    assert len(r) <= 100


def test_log_limiter_burst_then_summary() -> None:
    lim = LogLimiter(burst=3, interval=60.0)
    got = [lim.check("x", float(t)) for t in range(10)]
    assert got[:3] == [(True, 0)] * 3 and got[3:] == [(False, 0)] * 7
    assert lim.check("y", 10.0) == (True, 0)  # other lines are not held back
    assert lim.check("x", 60.0) == (True, 7)  # next window: the count of what was left out
    assert lim.check("x", 61.0) == (True, 0)


def test_log_limiter_memory_is_bounded() -> None:
    lim = LogLimiter(burst=1, interval=1.0, max_keys=10)
    for i in range(100):
        lim.check(f"k{i}", float(i) * 2)
    assert len(lim._windows) <= 11
