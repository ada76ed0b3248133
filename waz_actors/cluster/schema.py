"""The cluster's tables and its fencing check, in one place.

The PostgreSQL store (branch w3-pg) folds `CLUSTER_SQL` into its schema migrations as one
migration (`_V_CLUSTER`); until then `apply` creates it in the connection's search_path.

- `nodes`: one row per daemon (`cluster.node_id`): its heartbeat (database clock), whether it
  was asked to drain, and the control endpoint other daemons forward commands to.
- `leases`: one row per instance: its owner (NULL when released), the fencing epoch (only ever
  grows: every acquisition adds one) and the expiry, `now() + ttl` of the database at the last
  renew.
  No index on expires_at and room left on each page (fillfactor 50): a renew changes only
  expires_at, so PostgreSQL updates the rows in place (HOT) without touching any index.
- `waz_fence(instance, epoch)`: a write made for an instance runs this in its transaction; it
  raises SQLSTATE WZ409 unless the epoch is the current one of a held, unexpired lease. It
  locks the lease row FOR SHARE, so a takeover (an UPDATE of that row) waits for the write's
  commit, and any write after the takeover sees the new epoch and is refused.
- `waz_fence_row()`: the same as a trigger, for tables with `instance_id` and `lease_epoch`.
"""

from __future__ import annotations

from typing import Any

STALE_EPOCH = "WZ409"  # SQLSTATE of a write refused for a stale epoch

CLUSTER_SQL = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id      text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    draining     boolean NOT NULL DEFAULT false,
    endpoint     text NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS leases (
    instance_id text PRIMARY KEY,
    owner       text,
    epoch       bigint NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity'
) WITH (fillfactor = 50);
CREATE INDEX IF NOT EXISTS leases_owner ON leases (owner);

CREATE OR REPLACE FUNCTION waz_fence(p_instance text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cur record;
BEGIN
    SELECT owner, epoch, expires_at INTO cur FROM leases
        WHERE instance_id = p_instance FOR SHARE;
    IF NOT FOUND OR cur.owner IS NULL OR cur.epoch <> p_epoch OR cur.expires_at <= now() THEN
        RAISE EXCEPTION 'stale lease epoch % for instance % (current %)',
            p_epoch, p_instance, cur.epoch
            USING ERRCODE = 'WZ409';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION waz_fence_row() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM waz_fence(NEW.instance_id, NEW.lease_epoch);
    RETURN NEW;
END
$$;
"""


def apply(conn: Any) -> None:
    """Create the cluster tables and functions (idempotent) on a psycopg connection."""
    with conn.transaction():
        conn.execute(CLUSTER_SQL)
