"""Access tokens: `waz_` + 43 url-safe characters, stored only as their sha256 hex digest.

The admin token lives in `<state dir>/admin.token` (mode 0600) so only the daemon's user can
read it, and it is the one valid admin token: start-up and `rotate_admin` revoke every other.
Tenant tokens are made by `token.create` and shown once. Lookups are cached in memory. One
daemon: tokens change only through this class (the daemon owns the store, and the offline
rotation refuses to run while a daemon holds the state directory), so the cache stays exact. A
cluster: a revocation on another node reaches this one as a notification (store/tokens.py,
cluster/wake.py) that drops the token (`revoked_elsewhere`), and the cache is used only while
that listener listens (`trusted`); otherwise every request reads the store.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
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
    max_instances: int | None = None  # the token's own instance quota; None: the config's

    def owns(self, tenant: str) -> bool:
        return self.admin or tenant == self.tenant


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a file only its owner can read: a temporary file made
    0600 at creation (O_EXCL), fsynced, then renamed over; a crash leaves the old file whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


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
        # Bumped under the lock by every revocation, after its commit. A lookup fills the cache
        # only if the generation is the one it saw before its store read: a revoke committing
        # between that read and the fill must win, not be undone by a stale "valid".
        self._generation = 0
        self.admin_hash: str | None = None
        # Whether cached lookups may be used and filled: always on one daemon; on a cluster
        # only while this node hears other nodes' revocations (Cluster.listen_for_sends).
        self.trusted: Callable[[], bool] = lambda: True

    @property
    def admin_token_path(self) -> Path:
        return self._state_dir / ADMIN_TOKEN_FILE

    def ensure_admin_token(self) -> str:
        """Create the admin token on first start (or when the file was deleted), register it
        if the store lacks it, and revoke every other admin token: the file's is the only one."""
        path = self.admin_token_path
        self._state_dir.mkdir(parents=True, exist_ok=True)
        try:
            token = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            token = new_token()
            write_private(path, token + "\n")
        if not token.startswith(TOKEN_PREFIX):
            raise ValueError(f"{path}: not a waz token; delete it to have a new one made")
        os.chmod(path, 0o600)
        digest = hash_token(token)
        rec = self._store.find_token(digest)
        if rec is not None and rec.revoked:
            raise ValueError(f"{path}: this admin token was revoked; delete the file")
        self._store.set_admin_token(rec or _admin_record(digest))
        self._forget()
        self.admin_hash = digest
        return token

    def rotate_admin(self) -> dict[str, Any]:
        """A new admin token in admin.token; every other admin token revoked at once.

        The store commits first (new token valid, the others revoked, one transaction), then
        the file is replaced atomically: a crash in between leaves a file whose token is
        revoked, which start-up reports ("delete the file") instead of trusting it."""
        token = new_token()
        digest = hash_token(token)
        self._state_dir.mkdir(parents=True, exist_ok=True)
        revoked = self._store.set_admin_token(_admin_record(digest))
        write_private(self.admin_token_path, token + "\n")
        self._forget()
        self.admin_hash = digest
        return {
            "token": token,
            "token_id": digest[:12],
            "revoked": revoked,
            "path": str(self.admin_token_path),
        }

    def authenticate(self, token: str | None) -> Identity:
        if not token:
            raise Unauthorized("a token is required", {"field": "token"})
        if len(token) > MAX_TOKEN_LEN or not token.startswith(TOKEN_PREFIX):
            raise Unauthorized("invalid token", {"field": "token"})
        trusted = self.trusted()
        known = self._known.get(token) if trusted else None
        if known is not None:
            return known
        digest = hash_token(token)
        ident = self._cache.get(digest) if trusted else None
        if ident is not None:
            return ident
        generation = self._generation  # before the read: see __init__
        rec = self._store.find_token(digest)
        # compare_digest: the lookup is by hash already, this only keeps the check constant-time
        if rec is None or rec.revoked or not hmac.compare_digest(rec.token_hash, digest):
            raise Unauthorized("invalid token", {"field": "token"})
        ident = Identity(
            tenant=None if rec.admin else rec.tenant,
            admin=rec.admin,
            token_hash=digest,
            max_instances=None if rec.admin else rec.max_instances,
        )
        with self._lock:
            if self._generation == generation and trusted:
                self._cache[digest] = ident
                if len(self._known) < 10_000:  # bounded: a flood of distinct valid tokens is odd
                    self._known[token] = ident
        return ident

    def create(
        self, tenant: str, label: str = "", max_instances: int | None = None
    ) -> dict[str, Any]:
        from waz_actors.store.records import TokenRecord

        token = new_token()
        rec = TokenRecord(
            token_hash=hash_token(token),
            tenant=tenant,
            admin=False,
            label=label,
            created_at=time.time(),
            revoked=False,
            max_instances=max_instances,
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
        if rec.admin and rec.token_hash == self.admin_hash:
            # Revoking it would lock every admin out: rotation replaces it in the same step.
            raise InvalidState(
                "this is the current admin token: rotate it instead"
                " (waz-actors token rotate-admin, or the token.rotate_admin command)",
                {"field": "token_id"},
            )
        self._store.revoke_token(rec.token_hash)
        self._forget()
        return {"token_id": rec.token_hash[:12], "revoked": True}

    def revoked_elsewhere(self, token_hash: str | None) -> None:
        """Another node revoked `token_hash` (its commit is done); None: anything may have
        been (the listener (re)connected), so drop every cached lookup. Called on the
        listener's thread; a lookup that read the store before this cannot cache its answer."""
        if token_hash is None:
            self._forget()
            return
        with self._lock:
            self._generation += 1
            self._cache.pop(token_hash, None)
            gone = [t for t, ident in self._known.items() if ident.token_hash == token_hash]
            for t in gone:
                del self._known[t]

    def _forget(self) -> None:
        """After a revocation has committed: drop every cached lookup, and make lookups that
        read the store before this point unable to fill the cache."""
        with self._lock:
            self._generation += 1
            self._cache = {}
            self._known = {}


def _admin_record(digest: str) -> Any:
    from waz_actors.store.records import TokenRecord

    return TokenRecord(
        token_hash=digest,
        tenant="",
        admin=True,
        label="admin.token",
        created_at=time.time(),
        revoked=False,
    )


def describe(rec: Any) -> dict[str, Any]:
    """A token as clients see it: never the secret, the hash shortened to an id."""
    return {
        "token_id": rec.token_hash[:12],
        "tenant": None if rec.admin else rec.tenant,
        "admin": bool(rec.admin),
        "label": rec.label,
        "created_at": rec.created_at,
        "revoked": bool(rec.revoked),
        "max_instances": rec.max_instances,
    }
