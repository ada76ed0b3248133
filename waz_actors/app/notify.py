"""sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET.

Never blocks and never raises for I/O: a full or vanished socket must not stall or kill the
daemon, so failures are logged at debug level and reported as a False return. Without
NOTIFY_SOCKET (run by hand, in tests) every call is a silent no-op.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
import time
from collections.abc import Mapping

from loguru import logger

_FIELD = re.compile(r"^[A-Z][A-Z0-9_]*$")
# The socket went away, is full or refuses us: systemd restarted, or we are outliving it.
_QUIET_ERRNOS = {
    errno.EAGAIN,
    errno.EWOULDBLOCK,
    errno.ENOENT,
    errno.ECONNREFUSED,
    errno.ENOBUFS,
    errno.EPERM,
}


def _address(value: str) -> str | None:
    """NOTIFY_SOCKET as socket.sendto wants it: '@name' is the abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock and relative paths are not ours to handle


def _format(fields: Mapping[str, object]) -> bytes:
    lines = []
    for key, value in fields.items():
        name = key.upper()
        if not _FIELD.match(name):
            raise ValueError(f"sd_notify field {key!r}: must be letters, digits and '_'")
        if isinstance(value, bool):
            text = "1" if value else "0"
        else:
            # A newline would start a new assignment: STATUS text is one line by contract.
            text = " ".join(str(value).splitlines())
        lines.append(f"{name}={text}")
    return "\n".join(lines).encode("utf-8")


class Notifier:
    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
    ) -> None:
        self.address = address
        self._watchdog_usec = watchdog_usec
        self._watchdog_pid = watchdog_pid
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, unset_environment: bool = False
    ) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.

        `unset_environment` removes them from os.environ so subprocesses (driver hosts) do not
        inherit them and cannot speak for the daemon.
        """
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = _address(raw) if raw else None
        if raw and address is None:
            logger.debug("NOTIFY_SOCKET={!r} is not a path or abstract socket; ignored", raw)
        usec = _positive_int(env.get("WATCHDOG_USEC"))
        pid = _positive_int(env.get("WATCHDOG_PID"))
        if unset_environment:
            for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
                os.environ.pop(name, None)
        return cls(address, watchdog_usec=usec, watchdog_pid=pid)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    # ------------------------------------------------------------------ sending

    def send(self, **fields: object) -> bool:
        """Send one notification; True if the datagram left. Bad field names raise ValueError."""
        payload = _format(fields)
        if self.address is None or not payload:
            return False
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                    self._sock.setblocking(False)
                sock = self._sock
            sock.sendto(payload, socket.MSG_DONTWAIT, self.address)
            return True
        except OSError as e:
            if e.errno in _QUIET_ERRNOS:
                logger.debug("sd_notify not delivered: {}", e)
            else:
                logger.debug("sd_notify failed: {!r}", e)
            return False

    def ready(self) -> bool:
        return self.send(READY=1)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) tell this reload from a
        # stale one; older systemd ignores the extra field.
        return self.send(
            RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more before systemd gives up on a start or stop."""
        if not seconds > 0:
            raise ValueError(f"extend_timeout: seconds must be greater than 0, got {seconds!r}")
        return self.send(EXTEND_TIMEOUT_USEC=int(seconds * 1_000_000))

    # ------------------------------------------------------------------ watchdog

    def watchdog_interval(self) -> float | None:
        """The WatchdogSec= of the unit in seconds, or None when the watchdog is not ours.

        Send WATCHDOG=1 at least twice per interval. None if WATCHDOG_USEC is unset, or
        WATCHDOG_PID names another process (we are a child that inherited the environment).
        """
        if self._watchdog_usec is None:
            return None
        if self._watchdog_pid is not None and self._watchdog_pid != os.getpid():
            return None
        return self._watchdog_usec / 1_000_000

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _positive_int(value: str | None) -> int | None:
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n > 0 else None


__all__ = ["Notifier"]
