"""A bounded pool of read-only connections.

A pool rather than one connection per thread: thousands of actor threads read the store, and a
connection per thread would cost three file descriptors and a page cache each. Reads never wait
behind a commit (WAL) and never touch the writer's connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator

from waz_actors.errors import ShuttingDown


class Readers:
    def __init__(self, connect: Callable[[], sqlite3.Connection], size: int) -> None:
        self._connect = connect  # opens one more read-only connection
        self._slots = threading.BoundedSemaphore(size)
        self._free: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        self._slots.acquire()
        try:
            with self._lock:
                if self._closed:
                    raise ShuttingDown("the store is closed")
                conn = self._free.pop() if self._free else None
            if conn is None:
                conn = self._connect()
                with self._lock:
                    self._all.append(conn)
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with self._lock:
                    self._free.append(conn)
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all, self._free = self._all, [], []
        for conn in conns:
            conn.close()


__all__ = ["Readers"]
