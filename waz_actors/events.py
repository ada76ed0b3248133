"""The internal event bus: every state and message-status change passes here.

Publishers are actors and the store; subscribers are the ZeroMQ PUB socket, the systemd status
line and tests. Publishing never blocks on a subscriber: each subscriber is a plain callable that
must return quickly (the PUB bridge only appends to a queue).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

Subscriber = Callable[[str, Mapping[str, Any]], None]


class EventBus:
    def __init__(self) -> None:
        self._subs: list[tuple[str, Subscriber]] = []
        # Private events (QR codes, pairing codes) are secrets of one tenant: they never reach
        # `subscribe` (the PUB socket), only `subscribe_private` (the control server's streams,
        # which hand them to the client that asked for the pairing).
        self._private: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe_private(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._private = [*self._private, callback]

        def unsubscribe() -> None:
            with self._lock:
                self._private = [s for s in self._private if s is not callback]

        return unsubscribe

    def publish_private(self, topic: str, body: Mapping[str, Any]) -> None:
        for callback in self._private:
            try:
                callback(topic, body)
            except Exception:
                from loguru import logger

                logger.exception("private event subscriber failed on {}", topic)

    def subscribe(self, prefix: str, callback: Subscriber) -> Callable[[], None]:
        item = (prefix, callback)
        with self._lock:
            self._subs = [*self._subs, item]

        def unsubscribe() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not item]

        return unsubscribe

    def publish(self, topic: str, body: Mapping[str, Any]) -> None:
        for prefix, callback in self._subs:  # copy-on-write list: no lock needed to read
            if topic.startswith(prefix):
                try:
                    callback(topic, body)
                except Exception:
                    from loguru import logger

                    logger.exception("event subscriber failed on {}", topic)


class EventRecorder:
    """Collects events and lets a thread wait for a condition on them (tests, probe, bench)."""

    def __init__(self, bus: EventBus, prefix: str = "") -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._cv = threading.Condition()
        self._unsub = bus.subscribe(prefix, self._on_event)

    def _on_event(self, topic: str, body: Mapping[str, Any]) -> None:
        with self._cv:
            self.events.append((topic, dict(body)))
            self._cv.notify_all()

    def wait_for(
        self, predicate: Callable[[list[tuple[str, dict[str, Any]]]], bool], timeout: float = 10.0
    ) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: predicate(self.events), timeout=timeout)

    def close(self) -> None:
        self._unsub()
