"""An instance's named timers: at most one per name, each firing back as a TimerFired message.

A timer cancelled or replaced after it fired may still have its message in the mailbox; the
token tells such a stale message from the live one."""

from __future__ import annotations

from collections.abc import Callable

from waz_actors.actors.instance.deps import TimerScheduler
from waz_actors.actors.messages import TimerFired
from waz_actors.clock import TimerHandle

# What a `connect` timer carries: why it connects, and whether its gate slot is reserved.
ConnectPayload = tuple[str, bool]


class Timers:
    def __init__(self, scheduler: TimerScheduler, post: Callable[[object], None]) -> None:
        self._scheduler = scheduler
        self._post = post
        self._live: dict[str, tuple[TimerHandle, int]] = {}
        self._payloads: dict[str, ConnectPayload] = {}
        self._token = 0

    def schedule(self, name: str, delay: float, payload: ConnectPayload | None = None) -> None:
        """(Re)start timer `name`: it fires after `delay` daemon seconds."""
        self.cancel(name)
        self._token += 1
        token = self._token
        if payload is not None:
            self._payloads[name] = payload
        post = self._post
        handle = self._scheduler.call_later(delay, lambda: post(TimerFired(name, token)))
        self._live[name] = (handle, token)

    def cancel(self, *names: str) -> None:
        for name in names:
            t = self._live.pop(name, None)
            if t is not None:
                t[0].cancel()

    def cancel_all(self) -> None:
        self.cancel(*list(self._live))

    def pending(self, name: str) -> bool:
        return name in self._live

    def fired(self, msg: TimerFired) -> bool:
        """True if `msg` is the live timer of its name (now spent), False if it is stale."""
        current = self._live.get(msg.name)
        if current is None or current[1] != msg.token:
            return False
        del self._live[msg.name]
        return True

    def take_payload(self, name: str, default: ConnectPayload) -> ConnectPayload:
        return self._payloads.pop(name, default)
