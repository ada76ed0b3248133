"""Ids and enums shared by every layer; values are the strings of the wire protocol."""

from __future__ import annotations

import os
import random
import uuid
from enum import StrEnum


class InstanceState(StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    PAIRING = "pairing"
    ONLINE = "online"
    BACKOFF = "backoff"
    COOLDOWN = "cooldown"
    TRIPPED = "tripped"
    LOGGED_OUT = "logged_out"
    BANNED = "banned"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    # A send whose outcome is unknown, not resent because the driver's network would not drop a
    # second copy and queue.resend_unknown is "never" (final).
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.FAILED,
        MessageStatus.CANCELLED,
        MessageStatus.EXPIRED,
        MessageStatus.UNKNOWN,
    }
)
# Statuses that still occupy a slot in the instance's queue.
PENDING_STATUSES = frozenset({MessageStatus.QUEUED, MessageStatus.SENDING})


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_COMMAND = "unknown_command"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    EXISTS = "exists"
    INVALID_STATE = "invalid_state"
    QUEUE_FULL = "queue_full"
    TOO_LARGE = "too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    BUSY = "busy"
    SHUTTING_DOWN = "shutting_down"
    STORAGE_FULL = "storage_full"
    INTERNAL = "internal"


class Health(StrEnum):
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"


_ids = random.Random(os.urandom(32))


def new_message_id() -> str:
    """A message id fit to be reused as a WhatsApp message id (upper-case hex, like whatsmeow's).

    Generated once, before the first attempt, and kept for life (invariant 5).
    """
    # Unique, not secret: a PRNG seeded from the OS (one urandom syscall per id cost ~10 us on
    # the accept path); the store refuses a duplicate id anyway.
    return f"3EB0{_ids.getrandbits(64):016X}"


def new_instance_id() -> str:
    return uuid.uuid4().hex[:13].upper()
