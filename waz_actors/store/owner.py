"""Which messages belong to an instance: its tenant's, of its current incarnation.

An instance id can be deleted and created again, by another tenant too. Each creation (and each
hand-over to another tenant) starts a new incarnation, a number never used before, stored on the
instance row and on every message it accepts. A message belongs to the instance only while both
its incarnation and its tenant are the instance's: a deleted instance's messages never show up
in, or get sent by, a new instance that happens to reuse the id.
"""

from __future__ import annotations

from waz_actors.store.sql import Conn

# For queries by instance: bind `owned_args(instance_id)`. The subqueries are not correlated,
# so SQLite evaluates them once and can use the (instance_id, incarnation, ...) indexes.
OWNED = (
    "instance_id = ?"
    " AND incarnation = (SELECT incarnation FROM instances WHERE instance_id = ?)"
    " AND tenant = (SELECT tenant FROM instances WHERE instance_id = ?)"
)

# For queries over many instances, on a messages row named `m`.
OWNED_ROW = (
    "EXISTS (SELECT 1 FROM instances i WHERE i.instance_id = m.instance_id"
    " AND i.incarnation = m.incarnation AND i.tenant = m.tenant)"
)


def owned_args(instance_id: str) -> tuple[str, str, str]:
    return (instance_id, instance_id, instance_id)


def new_incarnation(c: Conn, instance_id: str, tenant: str, now: float) -> int:
    """A number no instance had before (AUTOINCREMENT never reuses one, deleted or not; nor does
    a PostgreSQL identity column). RETURNING rather than lastrowid: both backends have it."""
    row = c.execute(
        "INSERT INTO incarnations (instance_id, tenant, created_at) VALUES (?, ?, ?)"
        " RETURNING incarnation",
        (instance_id, tenant, now),
    ).fetchone()
    return int(row[0])


def current(c: Conn, instance_id: str) -> tuple[int, str] | None:
    """The instance's incarnation and tenant; None when there is no such instance."""
    row = c.execute(
        "SELECT incarnation, tenant FROM instances WHERE instance_id = ?", (instance_id,)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


__all__ = ["OWNED", "OWNED_ROW", "current", "new_incarnation", "owned_args"]
