"""Immutable records read from and written to the store; dict columns are JSON text."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    instance_id: str
    tenant: str
    driver: str
    settings: dict[str, Any]
    desired: str  # "running" | "stopped"
    state: str  # an InstanceState value
    since: float
    jid: str | None
    last_code: int | None
    last_reason: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InstanceRecord:
        return cls(
            instance_id=row["instance_id"],
            tenant=row["tenant"],
            driver=row["driver"],
            settings=json.loads(row["settings"]),
            desired=row["desired"],
            state=row["state"],
            since=row["since"],
            jid=row["jid"],
            last_code=row["last_code"],
            last_reason=row["last_reason"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class MessageRecord:
    message_id: str
    instance_id: str
    tenant: str
    to: str
    text: str | None
    media: dict[str, Any] | None
    status: str  # a MessageStatus value
    attempts: int
    last_error: str | None
    wa_id: str | None
    idempotency_key: str | None
    created_at: float
    updated_at: float
    expires_at: float | None
    delivered_at: float | None = None  # wall time of the delivered receipt
    read_at: float | None = None  # wall time of the read receipt
    possible_duplicate: bool = False  # resent after an unknown outcome, no network dedup
    outcome_unknown: bool = False  # the last attempt's outcome is unknown
    # What the driver fetched and sent for `media`: mime, kind, size, sha256 (None until then).
    media_info: dict[str, Any] | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> MessageRecord:
        media = row["media"]
        info = row["media_info"] if "media_info" in row.keys() else None  # noqa: SIM118 (Row)
        return cls(
            message_id=row["message_id"],
            instance_id=row["instance_id"],
            tenant=row["tenant"],
            to=row["recipient"],
            text=row["text"],
            media=json.loads(media) if media is not None else None,
            status=row["status"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            wa_id=row["wa_id"],
            idempotency_key=row["idempotency_key"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            expires_at=row["expires_at"],
            delivered_at=row["delivered_at"],
            read_at=row["read_at"],
            possible_duplicate=bool(row["possible_duplicate"]),
            outcome_unknown=bool(row["outcome_unknown"]),
            media_info=json.loads(info) if info is not None else None,
        )


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_hash: str
    tenant: str | None  # None (or "") for an admin token
    admin: bool
    label: str
    created_at: float
    revoked: bool
    max_instances: int | None = None  # this token's instance quota; None: the config's

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TokenRecord:
        return cls(
            token_hash=row["token_hash"],
            tenant=row["tenant"],
            admin=bool(row["admin"]),
            label=row["label"],
            created_at=row["created_at"],
            revoked=bool(row["revoked"]),
            max_instances=row["max_instances"],
        )


__all__ = ["InstanceRecord", "MessageRecord", "TokenRecord"]
