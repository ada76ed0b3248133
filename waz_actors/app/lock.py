"""One daemon per state directory (invariant 1 on the host): an flock held for the process life."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from waz_actors.errors import StateDirLocked


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "daemon.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateLocked(self.path.parent, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


class StateLocked(StateDirLocked):
    def __init__(self, state_dir: Path, holder: str) -> None:
        super().__init__(
            f"state directory {state_dir} is in use by another waz-actors daemon (pid {holder}); "
            "stop it first or use another --state-dir"
        )
