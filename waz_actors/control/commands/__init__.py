"""Command handlers, one module per group; importing this package registers them all."""

from waz_actors.control.commands import (
    campaign,
    cluster,
    daemon,
    events,
    inbox,
    instance,
    message,
    queue,
    sim,
    token,
    webhook,
)
from waz_actors.control.protocol import REGISTRY

__all__ = [
    "REGISTRY",
    "campaign",
    "cluster",
    "daemon",
    "events",
    "inbox",
    "instance",
    "message",
    "queue",
    "sim",
    "token",
    "webhook",
]
