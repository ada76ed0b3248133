"""policy/webhooks.py: patterns, body, signature, Retry-After and the outcome of an attempt."""

from __future__ import annotations

import json

import pytest

from waz_actors.policy import webhooks as rules

POLICY = rules.RetryPolicy(initial=1.0, maximum=3600.0, jitter=0.0, max_age=86400.0)


def test_patterns_and_matching() -> None:
    assert rules.check_patterns(["message.*", "message.*", "instance.state"]) == (
        "message.*",
        "instance.state",
    )
    for bad in (["message.nope"], [], ["nope.*"], [3]):
        with pytest.raises(ValueError):
            rules.check_patterns(bad)  # type: ignore[arg-type]
    assert rules.matches(["message.*"], "message.status")
    assert rules.matches(["message.*"], "message.in")
    assert not rules.matches(["message.*"], "instance.state")
    assert rules.matches(["*"], "campaign.progress")
    assert not rules.matches(["*"], rules.PING)  # pings go to the tested webhook only
    rules.register_event("campaign.finished")
    try:
        assert rules.check_patterns(["campaign.finished"]) == ("campaign.finished",)
    finally:
        rules.EVENTS.discard("campaign.finished")


def test_body_shape_and_signature() -> None:
    raw = rules.event_body("evt_1", "message.in", 12.5, "acme", "a1", {"text": "olá"})
    assert json.loads(raw) == {
        "id": "evt_1",
        "event": "message.in",
        "time": 12.5,
        "tenant": "acme",
        "instance_id": "a1",
        "data": {"text": "olá"},
    }
    assert "olá" in raw  # UTF-8, not \u escapes
    sig = rules.sign("secret", raw.encode())
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert rules.verify("secret", raw.encode(), sig)
    assert not rules.verify("secret", raw.encode() + b" ", sig)


def test_retry_after() -> None:
    assert rules.retry_after("120", 0.0) == 120.0
    assert rules.retry_after(None, 0.0) is None and rules.retry_after("soon", 0.0) is None
    when = rules.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480.0 - 30)
    assert when == pytest.approx(30.0)


def test_judge() -> None:
    ok = rules.judge(204, attempts=1, created_at=0.0, now_wall=1.0, policy=POLICY)
    assert ok == rules.Outcome("delivered")
    gone = rules.judge(410, attempts=1, created_at=0.0, now_wall=1.0, policy=POLICY)
    assert gone.status == "failed" and gone.disable
    # exponential: 1, 2, 4, ... capped at an hour
    delays = [
        rules.judge(500, attempts=n, created_at=0.0, now_wall=0.0, policy=POLICY).next_at
        for n in (1, 2, 3, 20)
    ]
    assert delays == [1.0, 2.0, 4.0, 3600.0]
    down = rules.judge(None, attempts=1, created_at=0.0, now_wall=0.0, policy=POLICY)
    assert down.status == "pending" and down.breaker_failure
    answered = rules.judge(404, attempts=1, created_at=0.0, now_wall=0.0, policy=POLICY)
    assert answered.status == "pending" and not answered.breaker_failure
    later = rules.judge(
        503, attempts=1, created_at=0.0, now_wall=0.0, policy=POLICY, retry_after_s=90.0
    )
    assert later.next_at == 90.0
    dead = rules.judge(500, attempts=30, created_at=0.0, now_wall=86000.0, policy=POLICY)
    assert dead.status == "dead"
    scaled = rules.RetryPolicy(initial=1.0, jitter=0.0, time_scale=0.01)
    assert rules.judge(500, attempts=1, created_at=0.0, now_wall=0.0, policy=scaled).next_at == 0.01
    jittered = rules.RetryPolicy(initial=10.0, jitter=0.2)
    spread = {
        rules.judge(
            500, attempts=1, created_at=0.0, now_wall=0.0, policy=jittered, rand=lambda r=r: r
        ).next_at
        for r in (0.0, 0.5, 1.0)
    }
    assert spread == {8.0, 10.0, 12.0}
