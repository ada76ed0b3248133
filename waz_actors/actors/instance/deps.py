"""What an instance is built from: the daemon-wide services every instance shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from waz_actors.actors.board import StatusBoard
from waz_actors.actors.gate import ConnectGate
from waz_actors.actors.sessions import LiveSessions
from waz_actors.clock import Clock, TimerHandle
from waz_actors.config import Config
from waz_actors.drivers.base import DriverFactory
from waz_actors.events import EventBus
from waz_actors.store import StoreAPI


class TimerScheduler(Protocol):
    """The part of a scheduler an instance uses (Scheduler, or ManualScheduler in tests)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


@dataclass(frozen=True)
class InstanceDeps:
    cfg: Config
    clock: Clock
    scheduler: TimerScheduler
    store: StoreAPI
    bus: EventBus
    board: StatusBoard
    gate: ConnectGate
    drivers: dict[str, DriverFactory]
    # Every open session, closable from any thread (the cluster's fence)
    sessions: LiveSessions = field(default_factory=LiveSessions)
