"""The PUB side of the control server: events from any thread, sent by the loop thread.

EventBus subscribers run on the publishing thread (hundreds of actor threads), so `on_event`
only appends to a bounded deque and wakes the loop; `flush` sends what waits. A slow or absent
subscriber costs dropped events, never a blocked actor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import msgpack
import zmq

EVENT_QUEUE_MAX = 100_000  # events waiting for the PUB socket; beyond this they are dropped
_NOBLOCK = int(zmq.NOBLOCK)


def pack_event(body: Mapping[str, Any]) -> bytes:
    # Event bodies come from many publishers; anything odd (an enum, a dataclass) becomes text
    # rather than an exception on the socket thread.
    packed: bytes = msgpack.packb(dict(body), use_bin_type=True, default=str)
    return packed


class Publisher:
    def __init__(self, stats: dict[str, int], wake: Callable[[], None]) -> None:
        self._stats = stats  # shared with the server: events_published, events_dropped
        self._wake = wake
        self._events: deque[tuple[str, Mapping[str, Any]]] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def on_event(self, topic: str, body: Mapping[str, Any]) -> None:
        # Called on the publisher's thread: only enqueue, never touch a socket or block.
        if len(self._events) >= EVENT_QUEUE_MAX:
            self._stats["events_dropped"] += 1
            return
        self._events.append((topic, body))
        self._wake()

    def flush(self, pub: zmq.Socket[Any] | None) -> None:
        """Send every waiting event (loop thread only); without a socket they are discarded."""
        events = self._events
        while events:
            topic, body = events.popleft()
            if pub is None:
                continue
            try:
                pub.send_multipart([topic.encode("utf-8"), pack_event(body)], _NOBLOCK)
                self._stats["events_published"] += 1
            except (zmq.ZMQError, TypeError, ValueError, UnicodeEncodeError):
                self._stats["events_dropped"] += 1
