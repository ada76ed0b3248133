"""The cluster's tables and its fencing check, in one place.

The PostgreSQL store runs `CLUSTER_SQL` as one of its schema migrations (store/pg_schema.py
`_PG_V_CLUSTER`); `apply` (LeaseStore.migrate) creates the same, idempotently, for the tests and
tools that use the leases without a store.

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
- `claims` (`CLAIMS_SQL`, cluster/claims.py): exclusive per-key claims on work that must run
  once in the cluster (`campaign:<id>`, `webhook:<id>`): the same owner/epoch/expiry as a
  lease, in their own table so placement never counts them as instances. `waz_claim_fence(key,
  epoch)` is `waz_fence` for a claim.
- `waz_fence_all(instances, epochs)`: the check for a whole group commit in one statement
  (store/fencing.py): locks the lease rows of every instance named FOR SHARE, in instance order
  (renew and release lock in that order too, so they never deadlock with it), and answers the
  1-based positions of the pairs refused. It raises nothing: the writer fails those writes
  alone and commits the rest of the batch.
"""

from __future__ import annotations

from typing import Any

MIGRATION_LOCK = 0x7761_7A00  # store/pg.py's _ADVISORY_KEY: one migrator at a time
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

CLAIMS_SQL = """
CREATE TABLE IF NOT EXISTS claims (
    key        text PRIMARY KEY,
    owner      text,
    epoch      bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL DEFAULT '-infinity'
) WITH (fillfactor = 50);
CREATE INDEX IF NOT EXISTS claims_owner ON claims (owner);

CREATE OR REPLACE FUNCTION waz_claim_fence(p_key text, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    cur record;
BEGIN
    SELECT owner, epoch, expires_at INTO cur FROM claims WHERE key = p_key FOR SHARE;
    IF NOT FOUND OR cur.owner IS NULL OR cur.epoch <> p_epoch OR cur.expires_at <= now() THEN
        RAISE EXCEPTION 'stale claim epoch % for % (current %)', p_epoch, p_key, cur.epoch
            USING ERRCODE = 'WZ409';
    END IF;
END
$$;
"""

# Store migration _PG_V_FENCE_ALL (databases made before it have CLUSTER_SQL without it).
FENCE_ALL_SQL = """
CREATE OR REPLACE FUNCTION waz_fence_all(p_instances text[], p_epochs bigint[])
RETURNS SETOF integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM leases WHERE instance_id = ANY (p_instances)
        ORDER BY instance_id FOR SHARE;
    RETURN QUERY
        SELECT w.i::integer
        FROM unnest(p_instances, p_epochs) WITH ORDINALITY AS w(instance_id, epoch, i)
        LEFT JOIN leases l ON l.instance_id = w.instance_id
        WHERE l.instance_id IS NULL OR l.owner IS NULL OR l.epoch <> w.epoch
            OR l.expires_at <= now();
END
$$;
"""
CLUSTER_SQL += FENCE_ALL_SQL


def apply(conn: Any) -> None:
    """Create the cluster tables and functions (idempotent) on a psycopg connection."""
    with conn.transaction():
        # The store's migration lock (store/pg.py _ADVISORY_KEY): nodes starting together
        # would otherwise replace the functions at once ("tuple concurrently updated").
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(CLUSTER_SQL)
        conn.execute(CLAIMS_SQL)
