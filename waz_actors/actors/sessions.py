"""Every open driver session of the daemon, closable from any thread: the fence's kill switch.

A fence (cluster/node.py: renewals stopped coming back, the lease is lost or a write was
refused) must close the sessions before the lease can expire, whatever their actors are doing:
an actor may be stuck in a store read on the very connection the partition cut, and its stop
message waits in its mailbox behind that read. So every instance actor opens its sessions
through a `SessionSwitch`, registered here under its instance id, and the fence trips the
switches of the fenced instances from its own thread: the live driver is disconnected at once
(`disconnect()` is thread-safe and non-blocking, per the driver contract) and that actor can
never open a session again; the supervisor stops the actors afterwards, at its own pace.

`may_run` (the cluster node's "do I hold this lease") is asked under the switch's lock when a
session opens, and the node drops a fenced lease before it trips the switches (under the same
lock): a session opens either before the fence (and is closed by it) or after it (and is
refused), never in between. One lock per switch: a burst of connects never queues on a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from loguru import logger

from waz_actors.drivers.base import Driver


class SessionSwitch:
    """The driver session of one instance actor. Tripped once, it stays open for nothing."""

    __slots__ = ("_driver", "_lock", "_may_run", "instance_id", "tripped")

    def __init__(self, may_run: Callable[[str], bool], instance_id: str) -> None:
        self._lock = threading.Lock()
        self._may_run = may_run
        self.instance_id = instance_id
        self._driver: Driver | None = None
        self.tripped = False

    def may_open(self) -> bool:
        """Asked before a driver is built (building one may take resources: a whatsmeow host
        slot): False when `open` would refuse now. Only a hint: `open` decides."""
        with self._lock:
            return not self.tripped and self._may_run(self.instance_id)

    def open(self, driver: Driver) -> bool:
        """Connect `driver` (the actor's thread). False: fenced, nothing was opened."""
        with self._lock:
            if self.tripped or not self._may_run(self.instance_id):
                return False
            self._driver = driver
            driver.connect()  # non-blocking (driver contract); under the lock: see the module
            return True

    def pair_code(self, driver: Driver, phone: str) -> bool:
        """A pairing code may open a session (the sim connects first): the same rule."""
        with self._lock:
            if self.tripped or not self._may_run(self.instance_id):
                return False
            self._driver = driver
            driver.request_pair_code(phone)
            return True

    def closed(self, driver: Driver) -> None:
        """The actor closed this driver itself."""
        with self._lock:
            if self._driver is driver:
                self._driver = None

    def trip(self) -> Driver | None:
        """No session from now on: the live one, for the caller to disconnect."""
        with self._lock:
            self.tripped = True
            driver, self._driver = self._driver, None
        return driver


class LiveSessions:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._switches: dict[str, SessionSwitch] = {}
        # Clustered: whether this node holds the instance's lease (ClusterNode.epoch). One
        # daemon runs every instance.
        self.may_run: Callable[[str], bool] = lambda _instance_id: True

    def switch(self, instance_id: str) -> SessionSwitch:
        """A new actor's switch; it replaces the instance's previous one (a replaced actor's
        switch is tripped by nobody: that actor closed its session before it was replaced)."""
        sw = SessionSwitch(lambda iid: self.may_run(iid), instance_id)
        with self.lock:
            self._switches[instance_id] = sw
        return sw

    def forget(self, sw: SessionSwitch) -> None:
        with self.lock:
            if self._switches.get(sw.instance_id) is sw:
                del self._switches[sw.instance_id]

    def trip(self, instance_ids: Iterable[str]) -> int:
        """Close these instances' sessions now, from any thread; their actors open none again.
        Answers how many sessions were open."""
        with self.lock:
            switches = [sw for iid in instance_ids if (sw := self._switches.get(iid)) is not None]
        drivers = [d for sw in switches if (d := sw.trip()) is not None]
        for d in drivers:  # outside the locks: a driver's sink may call back into an actor
            try:
                d.disconnect()
            except Exception:  # the next one must still close
                logger.exception("fence: a driver failed to disconnect")
        return len(drivers)

    def __len__(self) -> int:
        return len(self._switches)
