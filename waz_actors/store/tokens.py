"""API tokens: only their hashes are stored; revoked tokens stay listed.

Every node of a cluster caches its token lookups (control/auth.py). On PostgreSQL a revocation
tells them in its own transaction: `pg_notify('waz_tokens', <hash>)`, delivered to every
node's listener (cluster/wake.py) only if and when the revocation commits; each drops that
token from its cache. A token becoming valid needs no notice: only valid lookups are cached."""

from __future__ import annotations

from waz_actors.errors import BadRequest, Exists
from waz_actors.store.checks import need_str
from waz_actors.store.records import TokenRecord
from waz_actors.store.sql import Conn, Database, IntegrityError
from waz_actors.store.writer import Tx

MIN_TOKEN_PREFIX = 6
TOKENS_CHANNEL = "waz_tokens"  # NOTIFY payload: the hash of a token just revoked


def tell_nodes(c: Conn, revoked: list[str]) -> None:
    """On a store shared by several daemons: wake their listeners when this commits."""
    if revoked and getattr(c, "shared", False):
        for token_hash in revoked:
            c.execute("SELECT pg_notify(?, ?)", (TOKENS_CHANNEL, token_hash)).fetchall()


_INSERT = (
    "INSERT INTO tokens (token_hash, tenant, admin, label, created_at, revoked, max_instances)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _row(rec: TokenRecord) -> tuple[object, ...]:
    return (
        rec.token_hash,
        rec.tenant,
        int(rec.admin),
        rec.label,
        rec.created_at,
        int(rec.revoked),
        rec.max_instances,
    )


class Tokens:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add_token(self, rec: TokenRecord) -> None:
        need_str(rec.token_hash, "token_hash")
        if rec.tenant is not None and not isinstance(rec.tenant, str):
            raise BadRequest("tenant: expected a string or None", {"field": "tenant"})
        if not isinstance(rec.label, str):
            raise BadRequest("label: expected a string", {"field": "label"})
        if rec.max_instances is not None and (
            isinstance(rec.max_instances, bool) or not isinstance(rec.max_instances, int)
        ):
            raise BadRequest("max_instances: expected an integer", {"field": "max_instances"})
        row = _row(rec)

        def op(tx: Tx) -> None:
            try:
                tx.conn.execute(_INSERT, row)
            except IntegrityError:
                raise Exists("token already exists", {"label": rec.label}) from None

        self._db.writer.call(op)

    def set_admin_token(self, rec: TokenRecord) -> int:
        """Make `rec` the one valid admin token: store it unless it is stored already, and
        revoke every other admin token, in one transaction (a crash keeps the old set whole).
        Returns how many admin tokens were revoked."""
        need_str(rec.token_hash, "token_hash")
        if not rec.admin or rec.revoked:
            raise BadRequest("set_admin_token: needs an unrevoked admin token", {"field": "admin"})
        row = _row(rec)

        def op(tx: Tx) -> int:
            c = tx.conn
            if c.execute("SELECT 1 FROM tokens WHERE token_hash = ?", (rec.token_hash,)).fetchone():
                c.execute("UPDATE tokens SET revoked = 0 WHERE token_hash = ?", (rec.token_hash,))
            else:
                c.execute(_INSERT, row)
            revoked = c.execute(
                "UPDATE tokens SET revoked = 1 WHERE admin = 1 AND revoked = 0 AND token_hash != ?"
                " RETURNING token_hash",
                (rec.token_hash,),
            ).fetchall()
            tell_nodes(c, [r[0] for r in revoked])
            return len(revoked)

        return self._db.writer.call(op)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT * FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
        return TokenRecord.from_row(row) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        with self._db.read() as conn:
            rows = conn.execute("SELECT * FROM tokens ORDER BY created_at, token_hash").fetchall()
        return [TokenRecord.from_row(r) for r in rows]

    def revoke_token(self, token_hash_or_prefix: str) -> bool:
        key = token_hash_or_prefix
        need_str(key, "token")
        if len(key) < MIN_TOKEN_PREFIX:
            raise BadRequest(
                f"token: give at least {MIN_TOKEN_PREFIX} characters of the hash",
                {"field": "token"},
            )

        def op(tx: Tx) -> bool:
            c = tx.conn
            rows = c.execute(
                "SELECT token_hash FROM tokens WHERE substr(token_hash, 1, ?) = ?", (len(key), key)
            ).fetchall()
            # A full hash may also be the prefix of a longer one: the exact match wins.
            exact = [r[0] for r in rows if r[0] == key]
            matches = exact or [r[0] for r in rows]
            if not matches:
                return False
            if len(matches) > 1:
                raise BadRequest(
                    f"token: prefix {key!r} matches {len(matches)} tokens", {"field": "token"}
                )
            c.execute("UPDATE tokens SET revoked = 1 WHERE token_hash = ?", (matches[0],))
            tell_nodes(c, [matches[0]])
            return True

        return self._db.writer.call(op)


__all__ = ["MIN_TOKEN_PREFIX", "Tokens"]
