"""Webhook rules as pure functions: event names and patterns, the body, the signature, and
what one delivery attempt's outcome means (success, retry when, dead, or disable the webhook).

No I/O and no clock: the store's tap, the delivery worker and the commands all use these, and
tests call them directly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from waz_actors.policy.backoff import compute_backoff

# Every event a webhook may subscribe to. Extensible: a feature that publishes a new event
# registers its name (campaigns: campaign.progress, campaign.state) with `register_event`.
EVENTS: set[str] = {
    "message.status",
    "message.in",
    "instance.state",
    "instance.alarm",
    "campaign.progress",
    "campaign.state",
}
BODY_PREFIX = 256  # bytes of a receiver's answer kept (webhook.deliveries shows them)
PING = "ping"  # webhook.test: sent to one webhook, whatever it subscribed to
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def register_event(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"bad event name {name!r}")
    EVENTS.add(name)


def check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """The subscription's patterns, checked: `*`, an event name, or `family.*`."""
    out: list[str] = []
    families = {e.split(".", 1)[0] for e in EVENTS}
    for p in patterns:
        if not isinstance(p, str):
            raise ValueError(f"expected a string, got {p!r}")
        ok = p == "*" or p in EVENTS or (p.endswith(".*") and p[:-2] in families)
        if not ok:
            known = ", ".join(sorted(EVENTS))
            raise ValueError(f"unknown event {p!r} (known: {known}; or family.*, or *)")
        if p not in out:
            out.append(p)
    if not out:
        raise ValueError("expected at least one event pattern")
    return tuple(out)


def matches(patterns: Iterable[str], event: str) -> bool:
    if event == PING:
        return False  # pings go only to the webhook tested
    for p in patterns:
        if p == "*" or p == event or (p.endswith(".*") and event.startswith(p[:-1])):
            return True
    return False


def new_event_id() -> str:
    """Time-ordered (nanoseconds, then 8 random hex digits): the events table's index then
    grows at its end instead of touching a random page per insert. The digits come from
    `random`, not `secrets`: an id names an event, it guards nothing, and os.urandom costs a
    system call on the send path (a third of the tap's time, measured)."""
    return f"evt_{time.time_ns():x}{random.getrandbits(32):08x}"


def new_webhook_id() -> str:
    return "wh_" + uuid.uuid4().hex[:16]


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def event_body(
    event_id: str,
    event: str,
    time: float,
    tenant: str | None,
    instance_id: str | None,
    data: Mapping[str, Any],
) -> str:
    """The one JSON shape of every event, as the exact text that is signed and sent."""
    body = {
        "id": event_id,
        "event": event,
        "time": time,
        "tenant": tenant,
        "instance_id": instance_id,
        "data": dict(data),
    }
    return _ENCODER.encode(body)


# One encoder for every body: json.dumps with non-default options builds one per call, which
# is a good part of an event's cost on the send path.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sign(secret: str, raw: bytes) -> str:
    """The X-Waz-Signature header value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def verify(secret: str, raw: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, raw), header)


def retry_after(value: str | None, now_wall: float) -> float | None:
    """A Retry-After header in seconds from now (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now_wall)


@dataclass(frozen=True)
class RetryPolicy:
    """Delays in daemon seconds (backoff) except Retry-After, which the receiver gives in real
    seconds; max_age bounds a delivery's life from its creation."""

    initial: float = 1.0
    maximum: float = 3600.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_age: float = 86400.0
    time_scale: float = 1.0


@dataclass(frozen=True)
class Outcome:
    """What to write after an attempt. status: delivered | pending | dead | failed."""

    status: str
    next_at: float | None = None  # wall time of the next try (pending)
    disable: bool = False  # 410 Gone: the receiver asked us to stop
    breaker_failure: bool = False  # counts against the webhook's breaker


def judge(
    code: int | None,
    *,
    attempts: int,
    created_at: float,
    now_wall: float,
    policy: RetryPolicy,
    retry_after_s: float | None = None,
    rand: Callable[[], float] | None = None,
) -> Outcome:
    """One attempt's outcome. `code` None: no HTTP answer (refused, timeout, reset).

    2xx delivered; 410 failed and the webhook disabled; anything else retried with exponential
    backoff and jitter (Retry-After, when longer, wins), until max_age: then dead."""
    if code is not None and 200 <= code < 300:
        return Outcome("delivered")
    if code == 410:
        return Outcome("failed", disable=True)
    extra = {} if rand is None else {"rand": rand}
    delay = compute_backoff(
        max(1, attempts),
        initial=policy.initial,
        multiplier=policy.multiplier,
        maximum=policy.maximum,
        jitter=policy.jitter,
        **extra,
    )
    wait = delay * policy.time_scale
    if retry_after_s is not None:
        wait = max(wait, min(retry_after_s, policy.maximum * policy.time_scale))
    next_at = now_wall + wait
    if next_at > created_at + policy.max_age * policy.time_scale:
        return Outcome("dead", breaker_failure=True)
    # A 4xx other than 410/408/429 is the receiver's answer, not its absence: it does not count
    # against the breaker, which guards against receivers that are down.
    down = code is None or code >= 500 or code in (408, 429)
    return Outcome("pending", next_at=next_at, breaker_failure=down)


__all__ = [
    "BODY_PREFIX",
    "EVENTS",
    "PING",
    "Outcome",
    "RetryPolicy",
    "check_patterns",
    "event_body",
    "judge",
    "matches",
    "new_event_id",
    "new_secret",
    "new_webhook_id",
    "register_event",
    "retry_after",
    "sign",
    "verify",
]
