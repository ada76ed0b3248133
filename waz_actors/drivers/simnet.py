"""Compatibility: the fake network moved to the `waz_actors.drivers.sim` package.

Import from `waz_actors.drivers.sim.network` / `.model` / `.faults` / `.checks` instead; this
module only re-exports, for branches written before the move, and can go once none imports it.
"""

from waz_actors.drivers.sim.checks import check_message, check_phone
from waz_actors.drivers.sim.faults import (
    DEFAULT_BAN,
    FAULT_KINDS,
    FaultSchedule,
    parse_fault_rates,
    validate_fault,
)
from waz_actors.drivers.sim.model import (
    CLOSED,
    CONNECTING,
    LIVE,
    PAIRING,
    STAT_KEYS,
    InstanceStats,
    SessionOwner,
    SimSession,
    TimerScheduler,
    jid_for,
)
from waz_actors.drivers.sim.network import SimNetwork

__all__ = [
    "CLOSED",
    "CONNECTING",
    "DEFAULT_BAN",
    "FAULT_KINDS",
    "LIVE",
    "PAIRING",
    "STAT_KEYS",
    "FaultSchedule",
    "InstanceStats",
    "SessionOwner",
    "SimNetwork",
    "SimSession",
    "TimerScheduler",
    "check_message",
    "check_phone",
    "jid_for",
    "parse_fault_rates",
    "validate_fault",
]
