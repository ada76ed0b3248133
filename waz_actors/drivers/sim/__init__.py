"""The `sim` driver and the fake WhatsApp network behind it.

    model.py    instances, sessions and counters (the network's state)
    network.py  SimNetwork: the rules (one live session per id, once-only delivery, faults)
    faults.py   fault kinds, their validation, and a random schedule of them
    checks.py   argument checks shared by network, client and driver
    wire.py     the server's msgpack frames and the event codec
    mailbox.py  handing frames to a ZeroMQ I/O thread
    server.py   SimServer and `serve` (`waz-actors sim serve`): one network, many daemons
    remote.py   RemoteSimNetwork: a daemon's client of a SimServer
    driver.py   SimDriver: one instance's session, and the factory the driver registry uses

The package imports the in-process pieces only; `server` and `remote` (ZeroMQ) load when used.
"""

from waz_actors.drivers.sim.driver import (
    SimDriver,
    SimNetworkLike,
    SimSessionLike,
    make_sim_factory,
    network_from_config,
)
from waz_actors.drivers.sim.faults import (
    FAULT_KINDS,
    FaultSchedule,
    parse_fault_rates,
    validate_fault,
)
from waz_actors.drivers.sim.model import InstanceStats, SimSession, TimerScheduler, jid_for
from waz_actors.drivers.sim.network import SimNetwork

__all__ = [
    "FAULT_KINDS",
    "FaultSchedule",
    "InstanceStats",
    "SimDriver",
    "SimNetwork",
    "SimNetworkLike",
    "SimSession",
    "SimSessionLike",
    "TimerScheduler",
    "jid_for",
    "make_sim_factory",
    "network_from_config",
    "parse_fault_rates",
    "validate_fault",
]
