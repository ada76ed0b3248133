"""One WhatsApp instance: `Instance` (the coordinator) and what it is built from."""

from waz_actors.actors.instance.core import Instance
from waz_actors.actors.instance.deps import InstanceDeps, TimerScheduler

__all__ = ["Instance", "InstanceDeps", "TimerScheduler"]
