"""What the pool knows of each host and each instance (plain records, the I/O thread's)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol


def remove_db(path: str) -> None:
    """Delete a whatsmeow session database and its SQLite sidecars (idempotent)."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


class HostListener(Protocol):
    """What the pool needs from a driver (WhatsmeowDriver implements it)."""

    instance_id: str

    def on_host_event(self, gen: int, body: dict[str, Any]) -> None: ...

    def on_session_closed(self, gen: int) -> None: ...

    def on_host_died(self, gen: int) -> None: ...


@dataclass
class _Inst:
    listener: HostListener
    host: str
    gen: int = 0
    open: bool = False  # a session of this instance may be live on its host
    connect_deadline: float | None = None
    pair_deadline: float | None = None
    close_deadline: float | None = None
    # instance.delete: the slot is freed only once the session is closed (or its host killed),
    # so the close deadline still guards it; then the pool removes the session files of
    # `remove_gen`'s session itself, in case the host could not (a dial stuck in the library).
    detached: bool = False
    remove_gen: int | None = None
    remove_db: str = ""


@dataclass
class HostInfo:
    host_id: str
    proc: subprocess.Popen[bytes] | None = None
    ready: bool = False  # "hello" received: the ROUTER can route to it
    started: float = 0.0
    last_pong: float = 0.0
    instances: set[str] = field(default_factory=set)
    backlog: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    fds: int = 0
    rss_kib: int = 0
    threads: int = 0
    pid: int = 0
