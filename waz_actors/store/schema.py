"""Schema versions: `PRAGMA user_version` says how many migrations a database has had.

A migration is a list of SQL statements (or a callable taking the connection) run in one
transaction together with the user_version bump, so a crash mid-migration leaves the old version.
Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from waz_actors.store.sql import Conn

Migration = Sequence[str] | Callable[[Conn], None]

_V1: list[str] = [
    """CREATE TABLE instances (
        instance_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        driver TEXT NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}',
        desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
        state TEXT NOT NULL,
        since REAL NOT NULL,
        jid TEXT,
        last_code INTEGER,
        last_reason TEXT,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX instances_tenant ON instances (tenant)",
    # No foreign key to instances: a deleted instance's cancelled messages stay readable.
    # seq is the keyset for pagination and the tie-break for equal created_at.
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        instance_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        recipient TEXT NOT NULL,
        text TEXT,
        media TEXT,
        status TEXT NOT NULL CHECK (status IN
            ('queued', 'sending', 'sent', 'failed', 'cancelled', 'expired')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        wa_id TEXT,
        idempotency_key TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL
    )""",
    """CREATE UNIQUE INDEX messages_idempotency ON messages (tenant, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX messages_instance_status ON messages (instance_id, status, created_at, seq)",
    "CREATE INDEX messages_instance_seq ON messages (instance_id, seq)",
    "CREATE INDEX messages_status ON messages (status)",
    """CREATE TABLE message_history (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        time REAL NOT NULL,
        reason TEXT
    )""",
    "CREATE INDEX message_history_message ON message_history (message_id, id)",
    """CREATE TABLE conflicts (
        id INTEGER PRIMARY KEY,
        instance_id TEXT NOT NULL REFERENCES instances (instance_id) ON DELETE CASCADE,
        at REAL NOT NULL
    )""",
    "CREATE INDEX conflicts_instance_at ON conflicts (instance_id, at)",
    "CREATE INDEX conflicts_at ON conflicts (at)",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        topic TEXT NOT NULL,
        body TEXT NOT NULL
    )""",
    "CREATE INDEX events_time ON events (time)",
    """CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        tenant TEXT,
        admin INTEGER NOT NULL,
        label TEXT NOT NULL,
        created_at REAL NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    )""",
]


def _v2_incarnations(conn: Conn) -> None:
    """Incarnations (see owner.py), and indexes for them and for retention.

    Existing instances get their first incarnation. An existing message joins it when it has the
    instance's tenant and is pending (a delete cancels every pending message, so a pending one
    is the current instance's) or was created since the instance was. The others belonged to a
    deleted instance whose id was reused, or to the tenant before a config reload moved the
    instance: they keep no incarnation, stay readable by id, and a pending one is cancelled.
    """
    conn.execute(
        """CREATE TABLE incarnations (
            incarnation INTEGER PRIMARY KEY AUTOINCREMENT,
            instance_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            created_at REAL NOT NULL
        )"""
    )
    conn.execute("ALTER TABLE instances ADD COLUMN incarnation INTEGER")
    conn.execute("ALTER TABLE messages ADD COLUMN incarnation INTEGER")
    rows = conn.execute(
        "SELECT instance_id, tenant, created_at FROM instances ORDER BY created_at, instance_id"
    ).fetchall()
    for instance_id, tenant, created_at in rows:
        incarnation = conn.execute(
            "INSERT INTO incarnations (instance_id, tenant, created_at) VALUES (?, ?, ?)"
            " RETURNING incarnation",
            (instance_id, tenant, created_at),
        ).fetchone()[0]
        conn.execute(
            "UPDATE instances SET incarnation = ? WHERE instance_id = ?",
            (incarnation, instance_id),
        )
    conn.execute(
        """UPDATE messages SET incarnation = (
            SELECT i.incarnation FROM instances i
            WHERE i.instance_id = messages.instance_id AND i.tenant = messages.tenant
            AND (messages.status IN ('queued', 'sending') OR messages.created_at >= i.created_at)
        )"""
    )
    now = time.time()
    orphans = [
        r[0]
        for r in conn.execute(
            "SELECT message_id FROM messages"
            " WHERE incarnation IS NULL AND status IN ('queued', 'sending')"
        )
    ]
    conn.executemany(
        "UPDATE messages SET status = 'cancelled', updated_at = ? WHERE message_id = ?",
        [(now, m) for m in orphans],
    )
    conn.executemany(
        "INSERT INTO message_history (message_id, status, time, reason)"
        " VALUES (?, 'cancelled', ?, 'instance deleted')",
        [(m, now) for m in orphans],
    )
    for sql in (
        "DROP INDEX messages_instance_status",
        "DROP INDEX messages_instance_seq",
        "DROP INDEX messages_status",
        """CREATE INDEX messages_owner_status
            ON messages (instance_id, incarnation, status, created_at, seq)""",
        "CREATE INDEX messages_owner_seq ON messages (instance_id, incarnation, seq)",
        # retention: final messages by age
        "CREATE INDEX messages_status_updated ON messages (status, updated_at)",
    ):
        conn.execute(sql)


# Media fetched for a message (mime, kind, size, sha256), as JSON; see message.get.
_V_MEDIA: list[str] = ["ALTER TABLE messages ADD COLUMN media_info TEXT"]


def _v3_receipts(conn: Conn) -> None:
    """Receipts and honest resends (issue 12).

    delivered_at / read_at: wall times of WhatsApp's receipts, found again after a restart by the
    stored wa_id (indexed per instance). possible_duplicate: a resend after an unknown outcome
    went out on a driver whose network does not deduplicate resends. outcome_unknown: the last
    attempt's outcome is unknown (a session closed or the daemon stopped mid-send); cleared when
    the message is sent again. The new final status `unknown` joins the status CHECK: SQLite
    cannot alter a CHECK, so the stored table definition is edited in place (the procedure
    sqlite.org/lang_altertable.html gives for loosening a constraint; no row changes).
    """
    conn.execute("ALTER TABLE messages ADD COLUMN delivered_at REAL")
    conn.execute("ALTER TABLE messages ADD COLUMN read_at REAL")
    conn.execute("ALTER TABLE messages ADD COLUMN possible_duplicate INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE messages ADD COLUMN outcome_unknown INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "CREATE INDEX messages_wa_id ON messages (instance_id, wa_id) WHERE wa_id IS NOT NULL"
    )
    old = "'cancelled', 'expired'))"
    version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute(
            "UPDATE sqlite_master SET sql = replace(sql, ?, ?)"
            " WHERE type = 'table' AND name = 'messages'",
            (old, "'cancelled', 'expired', 'unknown'))"),
        )
        conn.execute(f"PRAGMA schema_version = {version + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")


_V_RECEIPTS: Migration = _v3_receipts

# A tenant token may carry its own instance quota (NULL: the config's tenants.max_instances).
_V_TOKEN_QUOTA: list[str] = ["ALTER TABLE tokens ADD COLUMN max_instances INTEGER"]

# The inbox of received messages (store/inbox.py says what a row is). Unique per instance,
# incarnation and WhatsApp id: a redelivered message is stored once.
_V_INBOX: list[str] = [
    """CREATE TABLE inbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        inbox_id TEXT NOT NULL UNIQUE,
        instance_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        incarnation INTEGER NOT NULL,
        wa_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        sender TEXT NOT NULL,
        text TEXT,
        media TEXT,
        media_data BLOB,
        sent_at REAL NOT NULL,
        received_at REAL NOT NULL
    )""",
    "CREATE UNIQUE INDEX inbox_wa_id ON inbox (instance_id, incarnation, wa_id)",
    "CREATE INDEX inbox_owner_seq ON inbox (instance_id, incarnation, seq)",
    "CREATE INDEX inbox_received ON inbox (received_at)",  # retention
]

# Campaigns (store/campaigns.py): one row per campaign, one per (campaign, number). The feeder's
# next batch reads (campaign_id, status, seq); the safety stop's last-50 reads done_at.
_V_CAMPAIGNS: list[str] = [
    """CREATE TABLE campaigns (
        campaign_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        instance_ids TEXT NOT NULL,
        text TEXT,
        media TEXT,
        start_at REAL,
        send_window TEXT,  -- not `window`: a reserved word in PostgreSQL
        delay_min REAL NOT NULL DEFAULT 0,
        delay_max REAL NOT NULL DEFAULT 0,
        check_numbers INTEGER NOT NULL DEFAULT 0,
        duplicates INTEGER NOT NULL DEFAULT 0,
        reason TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX campaigns_tenant ON campaigns (tenant, created_at)",
    """CREATE TABLE campaign_recipients (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id TEXT NOT NULL,
        number TEXT NOT NULL,
        vars TEXT,
        text TEXT,
        status TEXT NOT NULL,
        instance_id TEXT,
        message_id TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        checked INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        updated_at REAL NOT NULL,
        done_at REAL,
        UNIQUE (campaign_id, number)
    )""",
    "CREATE INDEX campaign_recipients_next ON campaign_recipients (campaign_id, status, seq)",
    # Partial: a recipient joins it only once it ended, so adding recipients does not pay for it.
    "CREATE INDEX campaign_recipients_done ON campaign_recipients (campaign_id, done_at)"
    " WHERE done_at IS NOT NULL",
]

# Webhooks (store/webhooks.py): the subscriptions, each event once (its signed body), and the
# delivery outbox, one row per (webhook, event), written in the same transaction as the write
# that makes the event durable (docs/design.md, invariant 12). `lane` is the instance id (or
# ''): deliveries of one webhook and one lane go out in seq order. Event ids are time-ordered,
# so their primary key grows at its end.
_V_WEBHOOKS: list[str] = [
    """CREATE TABLE webhooks (
        webhook_id TEXT PRIMARY KEY,
        tenant TEXT,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        secret TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        disabled_reason TEXT,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX webhooks_tenant ON webhooks (tenant)",
    """CREATE TABLE webhook_events (
        event_id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        tenant TEXT,
        instance_id TEXT,
        time REAL NOT NULL,
        body TEXT NOT NULL
    )""",
    """CREATE TABLE webhook_deliveries (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        webhook_id TEXT NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        lane TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        created_at REAL NOT NULL,
        last_at REAL,
        last_code INTEGER,
        last_error TEXT,
        last_body TEXT
    )""",
    # The only secondary index: rows are written on the send path, and each index is more
    # pages to fsync there. The worker reads new rows by seq (the primary key).
    "CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (webhook_id, seq)",
]

# Webhook fan-out off the send path (store/webhook_outbox.py): the tap writes one event row,
# numbered by `seq` in commit order (the rowid: no AUTOINCREMENT, whose sqlite_sequence write
# doubled the cost of an insert on the send path; a number is never reused because retention
# always keeps the newest event); the delivery worker fans events out to their webhooks'
# deliveries in batches and moves the cursor `webhook_cursor` in the same transaction.
# `from_seq`: a webhook gets only the events written after it. No unique (webhook, event)
# index: the cursor's compare-and-set already writes an event's rows once, and every index is
# one more b-tree the daemon's writer updates per delivery.
_V_WEBHOOK_FANOUT: list[str] = [
    """CREATE TABLE webhook_events_v2 (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        event TEXT NOT NULL,
        tenant TEXT,
        instance_id TEXT,
        time REAL NOT NULL,
        body TEXT NOT NULL
    )""",
    "INSERT INTO webhook_events_v2 (event_id, event, tenant, instance_id, time, body)"
    " SELECT event_id, event, tenant, instance_id, time, body FROM webhook_events"
    " ORDER BY event_id",
    "DROP TABLE webhook_events",
    "ALTER TABLE webhook_events_v2 RENAME TO webhook_events",
    "ALTER TABLE webhooks ADD COLUMN from_seq INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE webhook_cursor (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL
    )""",
    # the events already there had their deliveries written by the old tap
    "INSERT INTO webhook_cursor (name, seq)"
    " SELECT 'fanout', coalesce(max(seq), 0) FROM webhook_events",
]

MIGRATIONS: tuple[Migration, ...] = (
    _V1,
    _v2_incarnations,
    _V_MEDIA,
    _V_RECEIPTS,
    _V_TOKEN_QUOTA,
    _V_INBOX,
    _V_CAMPAIGNS,
    [],  # _V_CLUSTER: the cluster's tables exist only on PostgreSQL (pg_schema._PG_V_CLUSTER)
    _V_WEBHOOKS,
    [],  # _V_CLAIMS: per-key claims exist only on PostgreSQL (pg_schema._PG_V_CLAIMS)
    [],  # _V_FENCE_ALL: the cluster's one-statement fence, PostgreSQL only (pg_schema)
    _V_WEBHOOK_FANOUT,
)


class SchemaTooNew(Exception):
    """The database was written by a newer program; refusing to touch it."""


def user_version(conn: Conn) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _begin_immediate(conn: Conn) -> None:
    conn.execute("BEGIN IMMEDIATE")


def _set_user_version(conn: Conn, version: int) -> None:
    conn.execute(f"PRAGMA user_version = {int(version)}")


def migrate(
    conn: Conn,
    migrations: Sequence[Migration] = MIGRATIONS,
    *,
    begin: Callable[[Conn], None] = _begin_immediate,
    version: Callable[[Conn], int] = user_version,
    set_version: Callable[[Conn, int], None] = _set_user_version,
) -> list[int]:
    """Apply the migrations the database has not had yet; returns the versions applied.

    `conn` must be in autocommit mode (isolation_level=None): each migration runs in its own
    BEGIN IMMEDIATE transaction, so two processes starting at once do not both migrate.
    `begin`, `version` and `set_version` are the backend's (store/pg.py has PostgreSQL's).
    """
    applied: list[int] = []
    target = len(migrations)
    while True:
        begin(conn)
        try:
            current = version(conn)
            if current > target:
                raise SchemaTooNew(
                    f"database schema version {current} is newer than this program's {target}"
                )
            if current == target:
                conn.execute("COMMIT")
                return applied
            step = migrations[current]
            if callable(step):
                step(conn)
            else:
                for sql in step:
                    conn.execute(sql)
            set_version(conn, current + 1)
            conn.execute("COMMIT")
            applied.append(current + 1)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


__all__ = ["MIGRATIONS", "Migration", "SchemaTooNew", "migrate", "user_version"]
