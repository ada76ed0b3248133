"""Faults: the kinds the network can inject, their parameters, and a random schedule of them.

`validate_fault` is the one check of a fault's kind and parameters: the network runs it before
injecting, the remote client before a round trip, a schedule when it is built.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from waz_actors.clock import Clock, TimerHandle
from waz_actors.drivers.sim.checks import check_number
from waz_actors.drivers.sim.inbound import INCOMING_PARAMS, validate_incoming
from waz_actors.drivers.sim.model import TimerScheduler

FAULT_KINDS = (
    "conflict",
    "disconnect",
    "logout",
    "ban",
    "send_fail",
    "latency",
    "connect_fail",
    "hang",
    "blackhole",
    "receipt",
    "incoming",
)

# Parameters each fault kind accepts; anything else is a ValueError.
FAULT_PARAMS: dict[str, tuple[str, ...]] = {
    "conflict": (),
    "disconnect": (),
    "logout": (),
    "ban": ("duration",),
    "send_fail": ("count", "permanent"),
    "latency": ("connect", "send"),
    "connect_fail": ("count",),
    "hang": ("count",),
    # The next `count` sends vanish: no answer ever comes ("connected but dead"). With
    # deliver=true they still reach the recipient (the answer is what is lost).
    "blackhole": ("count", "deliver"),
    # The phone reports a delivered/read receipt for a message id, by WhatsApp id only (the way
    # whatsmeow reports one for a message sent before a restart).
    "receipt": ("message_id", "status"),
    "incoming": INCOMING_PARAMS,
}

DEFAULT_BAN = 3600.0

# Faults a schedule aims at an instance with a live session; the others prepare the next attempt.
NEEDS_LIVE = ("conflict", "disconnect", "logout", "ban", "incoming")
RECEIPT_KINDS = ("delivered", "read")


def validate_fault(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check a fault kind and its parameters; return them normalised or raise ValueError.

    Parameter values come from the control protocol or the command line: any type until checked.
    """
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
    allowed = FAULT_PARAMS[kind]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) or "none"
        raise ValueError(f"{kind}: unknown parameter(s) {', '.join(unknown)}; accepted: {accepted}")
    if kind == "incoming":
        return validate_incoming(params)
    out = dict(params)
    if "count" in out and (
        not isinstance(out["count"], int) or isinstance(out["count"], bool) or out["count"] < 1
    ):
        raise ValueError(f"{kind}: count must be an integer >= 1")
    for flag in ("permanent", "deliver"):
        if flag in out and not isinstance(out[flag], bool):
            raise ValueError(f"{kind}: {flag} must be true or false")
    if "duration" in out:
        check_number(f"{kind}: duration", out["duration"], minimum=0.0, strict=True)
    for key in ("connect", "send"):
        if key in out:
            check_number(f"{kind}: {key}", out[key], minimum=0.0)
    if kind == "receipt":
        if not isinstance(out.get("message_id"), str) or not out["message_id"]:
            raise ValueError("receipt: message_id must be a non-empty string")
        if out.setdefault("status", "delivered") not in RECEIPT_KINDS:
            raise ValueError(f"receipt: status must be one of {', '.join(RECEIPT_KINDS)}")
    if kind == "latency" and not out:
        raise ValueError("latency: give connect and/or send (daemon seconds)")
    return out


def parse_fault_rates(text: str) -> dict[str, float]:
    """`conflict=2,disconnect=4` -> {"conflict": 2.0, "disconnect": 4.0} (rates per hour)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, sep, value = part.partition("=")
        kind = kind.strip()
        if not sep or kind not in FAULT_KINDS:
            raise ValueError(
                f"bad fault rate {part!r}: want kind=rate, kinds: {', '.join(FAULT_KINDS)}"
            )
        try:
            rates[kind] = float(value)
        except ValueError:
            raise ValueError(f"bad fault rate {part!r}: {value!r} is not a number") from None
        check_number(f"rate of {kind}", rates[kind], minimum=0.0)
    return rates


class FaultTarget(Protocol):
    """What a schedule needs of the network (`SimNetwork`)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def scheduler(self) -> TimerScheduler: ...

    def instance_ids(self, *, live_only: bool = False, owned_only: bool = False) -> list[str]: ...

    def inject(self, instance_id: str, kind: str, **params: Any) -> None: ...


class FaultSchedule:
    """Random faults at given rates per daemon hour (a Poisson process), for chaos runs."""

    def __init__(
        self,
        rates_per_hour: Mapping[str, float],
        rand: random.Random | None = None,
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        rates: dict[str, float] = {}
        for kind, rate in rates_per_hour.items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; kinds: {', '.join(FAULT_KINDS)}")
            check_number(f"rate of {kind}", rate, minimum=0.0)
            if rate > 0:
                rates[kind] = float(rate)
        self.params = {k: validate_fault(k, dict(v)) for k, v in (params or {}).items()}
        if "latency" in rates and not self.params.get("latency"):
            raise ValueError("a latency fault schedule needs params {'latency': {...}}")
        self.rates = rates
        self.rand = rand if rand is not None else random.Random()
        self.fired: dict[str, int] = dict.fromkeys(rates, 0)
        self.skipped: dict[str, int] = dict.fromkeys(rates, 0)
        self._network: FaultTarget | None = None
        self._timer: TimerHandle | None = None
        self._next_due: float | None = None
        self._lock = threading.Lock()

    def start(self, network: FaultTarget) -> None:
        with self._lock:
            if self._network is not None:
                raise RuntimeError("fault schedule already started")
            self._network = network
            self._arm()

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self._network = None
            self._next_due = None

    def _arm(self) -> None:
        total = sum(self.rates.values())
        if self._network is None or total <= 0:
            return
        now = self._network.clock.now()
        # Planned times advance from the previous plan, not from when the timer really fired,
        # so scheduler lateness does not drag the rate down.
        base = now if self._next_due is None else self._next_due
        self._next_due = base + self.rand.expovariate(total / 3600.0)
        delay = max(0.0, self._next_due - now)
        self._timer = self._network.scheduler.call_later(delay, self._fire)

    def _fire(self) -> None:
        with self._lock:
            network = self._network
            if network is None:
                return
            kinds = list(self.rates)
            kind = self.rand.choices(kinds, weights=[self.rates[k] for k in kinds])[0]
            # The target is drawn from every instance the network knows, and the fault is
            # skipped when it needs a live session and that one has none: so each instance
            # sees its share of the rate, as when its owner opens WhatsApp Web elsewhere.
            # (Drawing among live sessions only would pile a fleet's faults onto the few
            # instances still online while the others cool down.) A live session whose owner
            # is dead (a daemon killed with -9, its session lingering on a sim server) is not a
            # target either: nobody would see the fault, and it would close the session the
            # restarted daemon is meant to replace (counted `stale_replaced`) at random.
            targets = network.instance_ids()
            target = self.rand.choice(targets) if targets else None
            needs_live = target is not None and kind in NEEDS_LIVE
            if needs_live and target not in network.instance_ids(owned_only=True):
                target = None
            self._arm()
        if target is None:
            self.skipped[kind] += 1
            return
        try:
            network.inject(target, kind, **self.params.get(kind, {}))
            self.fired[kind] += 1
        except ValueError:
            self.skipped[kind] += 1  # the session dropped between the pick and the fault
