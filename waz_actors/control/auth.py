"""Access tokens: `waz_` + 43 url-safe characters, stored only as their sha256 hex digest.

The admin token lives in `<state dir>/admin.token` (mode 0600) so only the daemon's user can
read it; tenant tokens are made by `token.create` and shown once. Lookups are cached in memory:
tokens change only through this class (the daemon owns the store), so the cache stays exact.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waz_actors.errors import InvalidState, NotFound, Unauthorized

TOKEN_PREFIX = "waz_"
ADMIN_TOKEN_FILE = "admin.token"
MAX_TOKEN_LEN = 128


@dataclass(frozen=True, slots=True)
class Identity:
    tenant: str | None  # None for an admin token: it sees every tenant
    admin: bool
    token_hash: str

    def owns(self, tenant: str) -> bool:
        return self.admin or tenant == self.tenant


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_admin_token(state_dir: str | Path) -> str:
    """What the CLI calls to find the admin token without being told."""
    return (Path(state_dir) / ADMIN_TOKEN_FILE).read_text(encoding="ascii").strip()


class Auth:
    def __init__(self, store: Any, state_dir: str | Path) -> None:
        self._store = store
        self._state_dir = Path(state_dir)
        self._cache: dict[str, Identity] = {}
        # token -> identity: skips the hash on every request after the first. Cleared whole
        # on a revoke (rare), so a revoked token is refused from the next request on.
        self._known: dict[str, Identity] = {}
        self._lock = threading.Lock()
        self.admin_hash: str | None = None

    @property
    def admin_token_path(self) -> Path:
        return self._state_dir / ADMIN_TOKEN_FILE

    def ensure_admin_token(self) -> str:
        """Create the admin token on first start; re-register it if the store lost it."""
        from waz_actors.store.records import TokenRecord

        path = self.admin_token_path
        self._state_dir.mkdir(parents=True, exist_ok=True)
        try:
            token = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            token = new_token()
            # O_EXCL + 0600 at creation: the secret is never readable by others, not even briefly.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(token + "\n")
        if not token.startswith(TOKEN_PREFIX):
            raise ValueError(f"{path}: not a waz token; delete it to have a new one made")
        os.chmod(path, 0o600)
        digest = hash_token(token)
        rec = self._store.find_token(digest)
        if rec is None or rec.revoked:
            if rec is None:
                self._store.add_token(
                    TokenRecord(
                        token_hash=digest,
                        tenant="",
                        admin=True,
                        label="admin.token",
                        created_at=time.time(),
                        revoked=False,
                    )
                )
            else:
                raise ValueError(f"{path}: this admin token was revoked; delete the file")
        self.admin_hash = digest
        return token

    def authenticate(self, token: str | None) -> Identity:
        if not token:
            raise Unauthorized("a token is required", {"field": "token"})
        if len(token) > MAX_TOKEN_LEN or not token.startswith(TOKEN_PREFIX):
            raise Unauthorized("invalid token", {"field": "token"})
        known = self._known.get(token)
        if known is not None:
            return known
        digest = hash_token(token)
        ident = self._cache.get(digest)
        if ident is not None:
            return ident
        rec = self._store.find_token(digest)
        # compare_digest: the lookup is by hash already, this only keeps the check constant-time
        if rec is None or rec.revoked or not hmac.compare_digest(rec.token_hash, digest):
            raise Unauthorized("invalid token", {"field": "token"})
        ident = Identity(
            tenant=None if rec.admin else rec.tenant, admin=rec.admin, token_hash=digest
        )
        with self._lock:
            self._cache[digest] = ident
            if len(self._known) < 10_000:  # bounded: a flood of distinct valid tokens is odd
                self._known[token] = ident
        return ident

    def create(self, tenant: str, label: str = "") -> dict[str, Any]:
        from waz_actors.store.records import TokenRecord

        token = new_token()
        rec = TokenRecord(
            token_hash=hash_token(token),
            tenant=tenant,
            admin=False,
            label=label,
            created_at=time.time(),
            revoked=False,
        )
        self._store.add_token(rec)
        return {"token": token, **describe(rec)}

    def list(self) -> list[dict[str, Any]]:
        return [describe(r) for r in self._store.list_tokens()]

    def revoke(self, ref: str) -> dict[str, Any]:
        matches = [r for r in self._store.list_tokens() if r.token_hash.startswith(ref)]
        if not matches:
            raise NotFound(f"no token {ref!r}", {"field": "token_id"})
        if len(matches) > 1:
            raise InvalidState(
                f"{ref!r} matches {len(matches)} tokens; give more characters",
                {"field": "token_id"},
            )
        rec = matches[0]
        if rec.admin:
            raise InvalidState(
                "the admin token cannot be revoked; delete admin.token and restart to rotate it",
                {"field": "token_id"},
            )
        self._store.revoke_token(rec.token_hash)
        with self._lock:
            self._cache.pop(rec.token_hash, None)
            self._known = {}
        return {"token_id": rec.token_hash[:12], "revoked": True}


def describe(rec: Any) -> dict[str, Any]:
    """A token as clients see it: never the secret, the hash shortened to an id."""
    return {
        "token_id": rec.token_hash[:12],
        "tenant": None if rec.admin else rec.tenant,
        "admin": bool(rec.admin),
        "label": rec.label,
        "created_at": rec.created_at,
        "revoked": bool(rec.revoked),
    }
