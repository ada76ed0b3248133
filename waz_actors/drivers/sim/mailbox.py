"""Hand items to a ZeroMQ I/O thread from any thread."""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Generic, TypeVar

import zmq

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Items for an I/O thread from any thread: a queue, plus an inproc wake-up socket.

    ZeroMQ sockets belong to one thread, so other threads never touch the I/O socket; they queue
    the item and, unless a wake-up is already on its way, poke the I/O thread's poller.
    """

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        addr = f"inproc://sim-mailbox-{uuid.uuid4().hex}"
        self.socket = ctx.socket(zmq.PULL)  # registered in the I/O thread's poller
        self.socket.bind(addr)
        self._tx = ctx.socket(zmq.PUSH)
        self._tx.setsockopt(zmq.LINGER, 0)
        self._tx.connect(addr)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._woken = False
        self._closed = False

    def put(self, item: T) -> None:
        self._queue.put(item)
        self.wake()

    def wake(self) -> None:
        with self._lock:
            if self._woken or self._closed:
                return
            self._woken = True
            try:
                self._tx.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                self._woken = False

    def drain(self) -> list[T]:
        """I/O thread only: everything queued so far, in order."""
        while self.socket.poll(0):
            self.socket.recv()
        with self._lock:
            self._woken = False  # items queued from now on send a new wake-up
        items: list[T] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._tx.close(linger=0)
        self.socket.close(linger=0)
