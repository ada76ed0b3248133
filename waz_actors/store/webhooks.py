"""Webhooks in the store: subscriptions, the tap that writes events, the commands' reads.

The tap (`WebhookTap.emit`) runs INSIDE the write operation that makes an event durable (a
message's status change, a receipt, an inbox insert, the event log row of a state change or an
alarm) and inserts the event once, its signed body included, in the same transaction, when some
enabled webhook wants it. So an event that is on disk has its webhook event on disk, and a
crash loses neither (invariant 12 of docs/design.md). The per-webhook delivery rows are written
later, off the send path, by the delivery worker's fan-out (store/webhook_outbox.py), which
moves a cursor over the events in the same transaction. The subscriptions the tap matches
against are cached in memory and reloaded, on the writer's connection, after any change to the
webhooks table: an event with no subscriber costs one loop over the cache and writes nothing.
On PostgreSQL a change also notifies `waz_webhooks` in its own transaction (`tell_nodes`): every
node's listener (cluster/wake.py) marks its tap stale and wakes its delivery worker, so the other
nodes see a new, changed or deleted webhook as soon as the change commits, not at their next
timed reload (docs/webhooks.md, "Clusters").

Portable SQL (store/sql.py): it runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from waz_actors.cluster.keys import webhook_key
from waz_actors.errors import NotFound
from waz_actors.policy import webhooks as rules
from waz_actors.store.sql import Conn, Database, has_table
from waz_actors.store.webhook_outbox import Step, Write, apply
from waz_actors.store.writer import Tx

T = TypeVar("T")

DELIVERY_STATUSES = ("pending", "delivered", "failed", "dead")
WEBHOOKS_CHANNEL = "waz_webhooks"  # NOTIFY payload: the id of a webhook just changed


def tell_nodes(c: Conn, webhook_id: str) -> None:
    """On a store shared by several daemons: when this commits, every node's listener marks
    its tap stale and wakes its delivery worker (Webhooks.changed_elsewhere)."""
    if getattr(c, "shared", False):
        c.execute("SELECT pg_notify(?, ?)", (WEBHOOKS_CHANNEL, webhook_id)).fetchall()


@dataclass(frozen=True)
class WebhookRecord:
    webhook_id: str
    tenant: str | None  # None: daemon-wide (created by the admin), receives every tenant's events
    url: str
    events: tuple[str, ...]
    secret: str
    enabled: bool
    disabled_reason: str | None
    created_at: float

    @classmethod
    def from_row(cls, row: Any) -> WebhookRecord:
        return cls(
            webhook_id=row["webhook_id"],
            tenant=row["tenant"],
            url=row["url"],
            events=tuple(json.loads(row["events"])),
            secret=row["secret"],
            enabled=bool(row["enabled"]),
            disabled_reason=row["disabled_reason"],
            created_at=row["created_at"],
        )

    def public(self) -> dict[str, Any]:
        """What webhook.get/list show: everything but the secret (shown once, at creation)."""
        return {
            "webhook_id": self.webhook_id,
            "tenant": self.tenant,
            "url": self.url,
            "events": list(self.events),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at,
        }


_HOOK_COLS = "webhook_id, tenant, url, events, secret, enabled, disabled_reason, created_at"


class WebhookTap:
    """Writes an event in the transaction of the write that makes it durable."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        self._hooks: list[WebhookRecord] = []
        self.dirty = True  # (re)load from the writer's connection before the next match
        self.on_new: Callable[[], None] = lambda: None  # wakes the delivery worker
        self._written = False  # events written since the last commit
        # Several daemons on one database (the cluster): a webhook created on another node
        # marks only that node's cache dirty, so this one reloads at least this often (real
        # seconds). None: one daemon owns the database and every change goes through it.
        self.reload_every: float | None = None
        self._loaded_at = 0.0
        # (tenant or None for any, event) -> wanted: the send path asks the same few questions
        # thousands of times a second; answered once per load of the webhooks.
        self._wanted: dict[tuple[str | None, str], bool] = {}

    def committed(self) -> None:
        """The writer's after-commit hook: wake the worker once new events are visible."""
        if self._written:
            self._written = False
            self.on_new()

    def _load(self, conn: Conn) -> None:
        # A store opened with older migrations (tests, tools) has no webhooks. Asked, not
        # tried: a failed statement would abort the whole PostgreSQL transaction.
        rows = []
        if has_table(conn, "webhooks"):
            rows = conn.execute(f"SELECT {_HOOK_COLS} FROM webhooks WHERE enabled = 1").fetchall()
        self._hooks = [WebhookRecord.from_row(r) for r in rows]
        self._wanted.clear()
        self.dirty = False
        self._loaded_at = time.monotonic()

    def _stale(self) -> bool:
        every = self.reload_every
        return self.dirty or (every is not None and time.monotonic() - self._loaded_at >= every)

    def wants(self, tx: Tx, event: str) -> bool:
        """Does any enabled webhook (of any tenant) subscribe to this event? The cheap test
        before a write reads what the event's body needs."""
        if self._stale():
            self._load(tx.conn)
        return self._wants(None, event)

    def _wants(self, tenant: str | None, event: str) -> bool:
        """Any enabled webhook for this tenant's event (tenant None: for any tenant's)."""
        key = (tenant, event)
        got = self._wanted.get(key)
        if got is None:
            got = self._wanted[key] = any(
                (tenant is None or h.tenant is None or h.tenant == tenant)
                and rules.matches(h.events, event)
                for h in self._hooks
            )
        return got

    def emit(
        self,
        tx: Tx,
        event: str,
        tenant: str | None,
        instance_id: str | None,
        data: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        *,
        only: str | None = None,
    ) -> str | None:
        """Insert the event; its id, or None when no enabled webhook wants it.

        `data` may be a function, so a write with no subscriber never builds the body.
        `only`: for this webhook alone (webhook.test's ping), its delivery written at once (the
        fan-out never gives a ping to anyone)."""
        if self._stale():
            self._load(tx.conn)
        if only is None and not self._wants(tenant or "", event):
            return None
        now = self._wall()
        event_id = rules.new_event_id()
        payload = data() if callable(data) else data
        body = rules.event_body(event_id, event, now, tenant, instance_id, payload)
        c = tx.conn
        c.execute(
            "INSERT INTO webhook_events (event_id, event, tenant, instance_id, time, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, event, tenant, instance_id, now, body),
        )
        if only is not None:
            c.execute(
                "INSERT INTO webhook_deliveries (webhook_id, event_id, lane, status, next_at,"
                " created_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                (only, event_id, instance_id or "", now, now),
            )
        self._written = True
        return event_id


def _instance_tenant(c: Conn, instance_id: str) -> str | None:
    row = c.execute("SELECT tenant FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    return None if row is None else str(row[0])


def emit_status(
    tap: WebhookTap,
    tx: Tx,
    message_id: str,
    status: str,
    reason: str | None,
    row: Mapping[str, Any] | None = None,
) -> None:
    """message.status for a status change or a receipt, built from the row as just written
    (`row`: those columns as the caller has just written them, saving a read on the send path:
    instance_id, tenant, recipient, attempts, wa_id, last_error, possible_duplicate)."""
    if not tap.wants(tx, "message.status"):
        return
    if row is None:
        row = tx.conn.execute(
            "SELECT instance_id, tenant, recipient, attempts, wa_id, last_error,"
            " possible_duplicate FROM messages WHERE message_id = ?",
            (message_id,),
        ).fetchone()
        assert row is not None  # the caller has just written it
    data: dict[str, Any] = {
        "message_id": message_id,
        "status": status,
        "reason": reason,
        "to": row["recipient"],
        "attempts": row["attempts"],
        "wa_id": row["wa_id"],
    }
    if status == "failed" and row["last_error"]:
        data["error"] = row["last_error"]
    if row["possible_duplicate"]:
        data["possible_duplicate"] = True
    tap.emit(tx, "message.status", row["tenant"], row["instance_id"], data)


def emit_logged(tap: WebhookTap, tx: Tx, topic: str, body: Mapping[str, Any]) -> None:
    """The webhook event of an event-log row, if it has one (called by EventLog.log_event).

    instance.<id>.state -> instance.state; daemon.alarm about an instance -> instance.alarm;
    campaign.state (the feeder logs every state change) -> campaign.state."""
    parts = topic.split(".")
    if topic.startswith("instance.") and parts[-1] == "state":
        # Every state change of every instance passes here: read its tenant only when some
        # webhook wants the event (5,000 instances coming online are 10,000 of these).
        if not tap.wants(tx, "instance.state"):
            return
        instance_id = str(body.get("instance_id") or parts[1])
        data = {k: body.get(k) for k in ("state", "previous", "reason", "code")}
        tap.emit(tx, "instance.state", _instance_tenant(tx.conn, instance_id), instance_id, data)
    elif topic == "daemon.alarm" and body.get("instance_id"):
        if not tap.wants(tx, "instance.alarm"):
            return
        instance_id = str(body["instance_id"])
        data = {k: body.get(k) for k in ("kind", "message")}
        tap.emit(tx, "instance.alarm", _instance_tenant(tx.conn, instance_id), instance_id, data)
    elif topic == "campaign.state":
        emit_campaign(tap, tx, topic, body)


def emit_campaign(tap: WebhookTap, tx: Tx, topic: str, body: Mapping[str, Any]) -> None:
    """campaign.<id>.<kind> or campaign.<kind> with a tenant in the body -> campaign.<kind>."""
    event = "campaign." + topic.rsplit(".", 1)[-1]
    if event in rules.EVENTS and body.get("tenant"):
        instance = body.get("instance_id")
        data = {k: v for k, v in body.items() if k not in ("tenant", "time")}
        tap.emit(tx, event, str(body["tenant"]), instance and str(instance), data)


_CHUNK = 500  # ids per `IN (...)`: well under SQLite's and PostgreSQL's parameter limits


def _chunks(items: list[T]) -> Iterable[list[T]]:
    return (items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK))


def _marks(items: list[Any]) -> str:
    return ", ".join("?" * len(items))


class Webhooks:
    def __init__(self, db: Database, wall: Callable[[], float]) -> None:
        self._db = db
        self._wall = wall
        self.tap = WebhookTap(wall)
        self.changes = 0  # bumped after each change of the webhooks (or a redeliver, a ping)
        # Tells the delivery worker to read the outbox again from the start (its lanes are a
        # view of the outbox): set by the daemon to a message down the worker's pipe.
        self.on_change: Callable[[], None] = lambda: None

    def emit_published(self, topic: str, body: Mapping[str, Any]) -> None:
        """A bus event with no durable write of ours behind it (campaign.progress: the feeder
        publishes the counts now and then): its event is written by an op of its own.
        campaign.state is not: the feeder logs it, and its event goes with that row."""
        if topic.rsplit(".", 1)[-1] == "state":
            return
        tap = self.tap
        self._db.writer.post(lambda tx: emit_campaign(tap, tx, topic, dict(body)))

    def _changed(self, fut: Future[Any]) -> Future[Any]:
        # The cache reloads from the writer's connection before the next match; a change that
        # rolled back is reloaded away the same way. `changes` tells the delivery worker to
        # reload its lanes (store/webhooks.py is the outbox; the worker's lanes are a view).
        def done(_: Future[Any]) -> None:
            self.tap.dirty = True
            self.changes += 1
            self.on_change()

        fut.add_done_callback(done)
        return fut

    def changed_elsewhere(self, webhook_id: str | None = None) -> None:
        """Another node changed a webhook (its id), or changes may have been missed (None: the
        listener (re)connected or lost its connection): reload the tap before its next match
        and tell the delivery worker to reload its lanes. From the listener's thread: only
        tells."""
        self.tap.dirty = True
        self.on_change()

    def apply(self, w: Write) -> Future[Step]:
        """One look of the delivery worker, written by the group commit (store/webhook_outbox.py
        says why the worker does not write for itself)."""

        def op(tx: Tx) -> Step:
            step = apply(tx.conn, w)
            if step.disabled:
                self.tap.dirty = True  # a 410: no more events for that webhook
                for wid in step.disabled:
                    tell_nodes(tx.conn, wid)
            return step

        return self._db.writer.submit(op)

    # -- subscriptions -----------------------------------------------------------------------

    def create_webhook(self, rec: WebhookRecord) -> Future[None]:
        def op(tx: Tx) -> None:
            # from_seq: the events written so far are not this webhook's (it gets only those
            # that happen after it was created, though the fan-out may come later).
            tx.conn.execute(
                f"INSERT INTO webhooks ({_HOOK_COLS}, from_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
                " (SELECT coalesce(max(seq), 0) FROM webhook_events))",
                (
                    rec.webhook_id,
                    rec.tenant,
                    rec.url,
                    json.dumps(list(rec.events)),
                    rec.secret,
                    int(rec.enabled),
                    rec.disabled_reason,
                    rec.created_at,
                ),
            )
            tell_nodes(tx.conn, rec.webhook_id)
            self.tap.dirty = True

        return self._changed(self._db.writer.submit(op))

    def get_webhook(self, webhook_id: str) -> WebhookRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_HOOK_COLS} FROM webhooks WHERE webhook_id = ?", (webhook_id,)
            ).fetchone()
        return None if row is None else WebhookRecord.from_row(row)

    def list_webhooks(self, tenant: str | None = None) -> list[WebhookRecord]:
        """Every webhook (tenant None: the admin's view) or one tenant's."""
        sql = f"SELECT {_HOOK_COLS} FROM webhooks"
        args: tuple[Any, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            args = (tenant,)
        with self._db.read() as conn:
            rows = conn.execute(sql + " ORDER BY created_at, webhook_id", args).fetchall()
        return [WebhookRecord.from_row(r) for r in rows]

    def delete_webhook(self, webhook_id: str) -> Future[bool]:
        def op(tx: Tx) -> bool:
            n = tx.conn.execute("DELETE FROM webhooks WHERE webhook_id = ?", (webhook_id,))
            if getattr(tx.conn, "shared", False):
                # Its claim is gone for good (like a deleted campaign's): whoever holds it
                # finds it lost at its next renew, if the notification did not stop it first.
                tx.conn.execute("DELETE FROM claims WHERE key = ?", (webhook_key(webhook_id),))
            tell_nodes(tx.conn, webhook_id)
            self.tap.dirty = True
            return n.rowcount > 0

        return self._changed(self._db.writer.submit(op))

    def set_webhook_enabled(
        self, webhook_id: str, enabled: bool, reason: str | None
    ) -> Future[None]:
        def op(tx: Tx) -> None:
            tx.conn.execute(
                "UPDATE webhooks SET enabled = ?, disabled_reason = ? WHERE webhook_id = ?",
                (int(enabled), None if enabled else reason, webhook_id),
            )
            tell_nodes(tx.conn, webhook_id)
            self.tap.dirty = True

        return self._changed(self._db.writer.submit(op))

    # -- deliveries --------------------------------------------------------------------------

    def ping(self, webhook_id: str) -> Future[str | None]:
        """webhook.test: a `ping` event for this webhook alone."""
        data = {"message": "webhook test"}

        def op(tx: Tx) -> str | None:
            row = tx.conn.execute(
                "SELECT tenant FROM webhooks WHERE webhook_id = ?", (webhook_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no webhook {webhook_id!r}", {"field": "webhook_id"})
            tell_nodes(tx.conn, webhook_id)  # its delivery is for whichever node holds it
            return self.tap.emit(tx, rules.PING, row[0], None, data, only=webhook_id)

        # A change for the worker: its delivery row is written here, not by its fan-out, and
        # on PostgreSQL may commit behind rows the worker has read past.
        return self._changed(self._db.writer.submit(op))

    def list_deliveries(
        self, webhook_id: str, *, status: str | None = None, after: int | None = None, limit: int
    ) -> list[dict[str, Any]]:
        sql = (
            "SELECT d.seq, d.event_id, e.event, d.lane, d.status, d.attempts, d.next_at,"
            " d.created_at, d.last_at, d.last_code, d.last_error, d.last_body"
            " FROM webhook_deliveries d JOIN webhook_events e USING (event_id)"
            " WHERE d.webhook_id = ? AND d.seq > ?"
        )
        args: list[Any] = [webhook_id, after or 0]
        if status is not None:
            sql += " AND d.status = ?"
            args.append(status)
        with self._db.read() as conn:
            rows = conn.execute(sql + " ORDER BY d.seq LIMIT ?", (*args, limit)).fetchall()
        out = []
        for r in rows:
            item = dict(r)
            item["instance_id"] = item.pop("lane") or None
            if item["status"] != "pending":
                item["next_at"] = None
            out.append(item)
        return out

    def redeliver(self, webhook_id: str, event_ids: Iterable[str] | None) -> Future[int]:
        """Deliveries back to pending, with a fresh max_age: the listed events, or every dead
        and failed one. Also enables the webhook again (after a 410, say)."""
        ids = None if event_ids is None else list(event_ids)
        now = self._wall()

        def op(tx: Tx) -> int:
            base = (
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_at = ?,"
                " created_at = ? WHERE webhook_id = ?"
            )
            if ids is None:
                cur = tx.conn.execute(
                    base + " AND status IN ('dead', 'failed')", (now, now, webhook_id)
                )
            else:
                changed = 0
                for chunk in _chunks(ids):
                    cur = tx.conn.execute(
                        base + f" AND event_id IN ({_marks(chunk)})", (now, now, webhook_id, *chunk)
                    )
                    changed += int(cur.rowcount)
            tx.conn.execute(
                "UPDATE webhooks SET enabled = 1, disabled_reason = NULL WHERE webhook_id = ?",
                (webhook_id,),
            )
            tell_nodes(tx.conn, webhook_id)
            self.tap.dirty = True
            return int(cur.rowcount) if ids is None else changed

        return self._changed(self._db.writer.submit(op))

    def barrier(self) -> Future[None]:
        """Resolves once every write submitted before it is committed."""
        return self._db.writer.submit(lambda tx: None)

    def delivery_counts(self, webhook_id: str | None = None) -> dict[str, int]:
        """Deliveries per status, of one webhook or of all."""
        sql = "SELECT status, count(*) FROM webhook_deliveries"
        args: tuple[str, ...] = ()
        if webhook_id is not None:
            sql += " WHERE webhook_id = ?"
            args = (webhook_id,)
        with self._db.read() as conn:
            rows = conn.execute(sql + " GROUP BY status", args).fetchall()
        return {r[0]: int(r[1]) for r in rows}


__all__ = [
    "DELIVERY_STATUSES",
    "WebhookRecord",
    "WebhookTap",
    "Webhooks",
    "emit_campaign",
    "emit_logged",
    "emit_status",
]
