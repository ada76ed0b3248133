"""Exception tree; every error a client can see carries its protocol code."""

from __future__ import annotations

import errno
from typing import Any

from waz_actors.types import ErrorCode


class WazError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_wire(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "details": self.details}


class BadRequest(WazError):
    code = ErrorCode.BAD_REQUEST


class UnsupportedVersion(WazError):
    code = ErrorCode.UNSUPPORTED_VERSION


class UnknownCommand(WazError):
    code = ErrorCode.UNKNOWN_COMMAND


class Unauthorized(WazError):
    code = ErrorCode.UNAUTHORIZED


class NotFound(WazError):
    code = ErrorCode.NOT_FOUND


class Exists(WazError):
    code = ErrorCode.EXISTS


class InvalidState(WazError):
    code = ErrorCode.INVALID_STATE


class StaleEpoch(InvalidState):
    """A cluster node wrote for an instance whose lease it no longer holds at that epoch: the
    database refused the write (SQLSTATE WZ409, cluster/schema.py) and nothing was changed."""


class QueueFull(WazError):
    code = ErrorCode.QUEUE_FULL


class TooLarge(WazError):
    code = ErrorCode.TOO_LARGE


class QuotaExceeded(WazError):
    """A tenant's limit (tenants.max_instances, or its token's own) would be passed."""

    code = ErrorCode.QUOTA_EXCEEDED


class Busy(WazError):
    code = ErrorCode.BUSY


class ShuttingDown(WazError):
    code = ErrorCode.SHUTTING_DOWN


class StorageFull(WazError):
    """The disk holding the state directory is full: nothing was written."""

    code = ErrorCode.STORAGE_FULL


def disk_full(e: BaseException) -> bool:
    """True for the ways a full disk shows: SQLite's SQLITE_FULL ("database or disk is full")
    and an OSError ENOSPC (a file the daemon writes itself)."""
    if isinstance(e, StorageFull):
        return True
    import sqlite3  # here, not at the top: the client library imports this module, lightly

    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)  # extended codes keep the primary low byte
        full = isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_FULL
        return full or "database or disk is full" in str(e)
    return isinstance(e, OSError) and e.errno == errno.ENOSPC


class Internal(WazError):
    code = ErrorCode.INTERNAL


class ConfigError(Exception):
    """A bad configuration; the message is one line naming the key."""


class StateDirLocked(Exception):
    """Another daemon holds the state directory."""
