"""What the pool knows of each host and each instance (plain records, the I/O thread's)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol


def remove_db(path: str, background: bool = False) -> None:
    """Delete a whatsmeow session: its SQLite file and sidecars, or its PostgreSQL schema
    (drivers/wm_pg.py) when `path` is a session URL (idempotent). `background`: the pool's I/O
    thread must not wait on the database (the supervisor drops the schema after it anyway)."""
    from waz_actors.drivers import wm_pg

    if wm_pg.is_pg(path):
        if background:
            threading.Thread(target=_drop_logged, args=(path,), daemon=True).start()
        else:
            wm_pg.drop(path)
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass


def _drop_logged(location: str) -> None:
    from waz_actors.drivers import wm_pg

    try:
        wm_pg.drop(location)
    except Exception as e:
        logging.getLogger("waz.host").warning(
            "could not drop session schema %s: %s", wm_pg.masked(location), e
        )


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
