"""The Store: durable instances, outbox, history, conflicts, event log and tokens, in SQLite
or PostgreSQL (store/pg.py).

A facade: each table family has its own module (instances, messages and message_reads,
events, tokens, retention, backup) and this class hands every call to it. `StoreAPI` (api.py)
is the part of it the daemon relies on; the rest is for tests and tools.

Writes go through the group-commit `Writer` (one thread, one connection); reads use a small pool
of read-only connections, so they never wait behind a commit and never touch the writer's
connection. Argument errors (bad status, wrong type) raise at once, before anything is queued;
errors that depend on what is stored (not found, exists, queue full) come through the Future of
the write, or are raised by the synchronous methods.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from waz_actors.errors import BadRequest
from waz_actors.store import backup as _backup
from waz_actors.store.campaigns import Campaigns
from waz_actors.store.connection import Connections, read_pragmas
from waz_actors.store.events import Conflicts, EventLog
from waz_actors.store.fencing import Fencing
from waz_actors.store.inbox import Inbox, InboxRecord
from waz_actors.store.instances import Instances
from waz_actors.store.message_reads import MessageReads
from waz_actors.store.messages import Messages
from waz_actors.store.records import InstanceRecord, MessageRecord, TokenRecord
from waz_actors.store.retention import Retention
from waz_actors.store.schema import MIGRATIONS, Migration, user_version
from waz_actors.store.sql import Database, is_postgres_url
from waz_actors.store.tokens import Tokens
from waz_actors.store.webhooks import Webhooks
from waz_actors.store.writer import Tx, Writer

if TYPE_CHECKING:
    from waz_actors.store.api import StoreAPI
    from waz_actors.store.pg import PgConnections

T = TypeVar("T")


class Store:
    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        batch_max: int = 1000,
        wall: Callable[[], float] = time.time,
        readers: int = 8,
        migrations: Sequence[Migration] | None = None,
    ) -> None:
        """`path`: the SQLite file, or a postgresql:// URL for the PostgreSQL backend (store/pg.py;
        `synchronous` is SQLite's, PostgreSQL's commits are as durable as the server says).
        `migrations`: the backend's own list unless given (tests)."""
        self._sqlite: Connections | None = None
        self._pg: PgConnections | None = None
        self._db: Database
        self.path: Path | None = None
        self.url: str | None = None
        if is_postgres_url(path):
            from waz_actors.store.pg import PgConnections  # psycopg: only when used
            from waz_actors.store.pg_schema import PG_MIGRATIONS

            self._pg = self._db = PgConnections(
                str(path),
                batch_max=batch_max,
                readers=readers,
                migrations=PG_MIGRATIONS if migrations is None else migrations,
            )
            self.url = str(path)
            self.synchronous = "FULL"
        else:
            self._sqlite = self._db = Connections(
                path,
                synchronous=synchronous,
                batch_max=batch_max,
                readers=readers,
                migrations=MIGRATIONS if migrations is None else migrations,
            )
            self.path = self._sqlite.path
            self.synchronous = self._sqlite.synchronous
        self.batch_max = batch_max
        self.wall = wall
        self._instances = Instances(self._db, wall)
        self._messages = Messages(self._db, wall)
        self._reads = MessageReads(self._db, wall)
        self._conflicts = Conflicts(self._db)
        self._events = EventLog(self._db, wall)
        self._tokens = Tokens(self._db)
        self._retention = Retention(self._db)
        self._inbox = Inbox(self._db, wall)
        self._campaigns = Campaigns(self._db, wall)
        self._webhooks = Webhooks(self._db, wall)
        self._db.tap = self._webhooks.tap

    # -- life cycle --------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return "postgresql" if self._pg is not None else "sqlite"

    @property
    def campaigns(self) -> Campaigns:
        """Campaigns and their recipients (a table family with its own methods)."""
        return self._campaigns

    def open(self) -> None:
        (self._pg or self._connections()).open()
        self._db.writer.after_commit = self._webhooks.tap.committed

    def close(self) -> None:
        """Drain the writer (everything submitted is committed), then close every connection."""
        (self._pg or self._connections()).close()

    def _connections(self) -> Connections:
        assert self._sqlite is not None
        return self._sqlite

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def writer(self) -> Writer:
        return self._db.writer

    def submit(self, op: Callable[[Tx], T]) -> Future[T]:
        """Run `op` in the writer's next group commit (for callers with their own SQL)."""
        return self._db.writer.submit(op)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far is committed."""
        self._db.writer.call(lambda tx: None, timeout)

    def stats(self) -> dict[str, int]:
        """Writer figures: commits, ops, batches, largest_batch."""
        return self._db.writer.stats()

    def schema_version(self) -> int:
        if self._pg is not None:
            return self._pg.schema_version()
        with self._db.read() as conn:
            return user_version(conn)

    def pragmas(self) -> dict[str, str | int]:
        """The write connection's settings, read back from SQLite (what is really in force);
        on PostgreSQL the server's durability settings."""
        if self._pg is not None:
            return self._pg.settings()
        # synchronous and foreign_keys are per connection: ask the one that writes.
        return self._db.writer.call(lambda tx: read_pragmas(tx.conn))

    def backup(self, dest: str | Path) -> None:
        """Consistent online copy, taken from a read connection while writes go on.

        Written to a temporary file and renamed, so `dest` is never a half-written database.
        """
        if self._pg is not None:
            raise BadRequest(
                "backup: a PostgreSQL store is backed up with pg_dump (docs/operations.md)",
                {"field": "dest"},
            )
        _backup.backup(self._connections(), dest)

    # -- instances ---------------------------------------------------------------------------

    def create_instance(self, rec: InstanceRecord) -> None:
        self._instances.create_instance(rec)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return self._instances.get_instance(instance_id)

    def list_instances(self, tenant: str | None = None) -> list[InstanceRecord]:
        return self._instances.list_instances(tenant)

    def save_state(
        self,
        instance_id: str,
        state: str,
        *,
        since: float,
        reason: str | None = None,
        code: int | None = None,
        jid: str | None = None,
    ) -> Future[None]:
        return self._instances.save_state(
            instance_id, state, since=since, reason=reason, code=code, jid=jid
        )

    def set_desired(self, instance_id: str, desired: str) -> Future[None]:
        return self._instances.set_desired(instance_id, desired)

    def update_instance(
        self, instance_id: str, *, driver: str, tenant: str, settings: dict[str, Any], desired: str
    ) -> None:
        self._instances.update_instance(
            instance_id, driver=driver, tenant=tenant, settings=settings, desired=desired
        )

    def delete_instance(self, instance_id: str, reason: str = "instance deleted") -> list[str]:
        return self._instances.delete_instance(instance_id, reason)

    # -- messages ----------------------------------------------------------------------------

    def enqueue(self, rec: MessageRecord, *, max_queue: int) -> Future[tuple[MessageRecord, bool]]:
        return self._messages.enqueue(rec, max_queue=max_queue)

    def update_message(
        self,
        message_id: str,
        status: str,
        *,
        attempts: int | None = None,
        error: str | None = None,
        wa_id: str | None = None,
        reason: str | None = None,
        only_if: Iterable[str] | None = None,
        media_info: Mapping[str, Any] | None = None,
        possible_duplicate: bool | None = None,
        outcome_unknown: bool | None = None,
        owner: str | None = None,
    ) -> Future[bool]:
        return self._messages.update_message(
            message_id,
            status,
            attempts=attempts,
            error=error,
            wa_id=wa_id,
            reason=reason,
            only_if=only_if,
            media_info=media_info,
            possible_duplicate=possible_duplicate,
            outcome_unknown=outcome_unknown,
            owner=owner,
        )

    def set_status(self, message_id: str, status: str, **changes: Any) -> None:
        self._messages.set_status(message_id, status, **changes)

    def fence_writes(
        self,
        epoch_of: Callable[[str], int | None],
        on_stale: Callable[[str, int | None], None] | None = None,
    ) -> None:
        if self._pg is None:
            raise RuntimeError("fencing needs the PostgreSQL store (one SQLite daemon has none)")
        self._db.writer.fencing = Fencing(epoch_of, on_stale)

    @property
    def fencing(self) -> Fencing | None:
        """The fence's figures (checks, refusals) when it is on."""
        return self._db.writer.fencing

    def wake_others(self, node_id: str) -> None:
        self._messages.node_id = node_id

    def recover_sending(self, instance_id: str | None = None) -> int:
        return self._messages.recover_sending(instance_id)

    def cancel_pending(
        self, instance_id: str, *, status: str = "queued", reason: str = "purged"
    ) -> list[str]:
        return self._messages.cancel_pending(instance_id, status=status, reason=reason)

    def requeue_failed(
        self, instance_id: str, message_ids: list[str] | None, *, max_queue: int
    ) -> list[str]:
        return self._messages.requeue_failed(instance_id, message_ids, max_queue=max_queue)

    def get_message(self, message_id: str) -> MessageRecord | None:
        return self._reads.get_message(message_id)

    def history(self, message_id: str) -> list[dict[str, Any]]:
        return self._reads.history(message_id)

    def message_by_wa_id(self, instance_id: str, wa_id: str) -> str | None:
        return self._reads.message_by_wa_id(instance_id, wa_id)

    def record_receipt(self, message_id: str, kind: str, at: float) -> Future[bool]:
        return self._messages.record_receipt(message_id, kind, at)

    def pending_messages(
        self, instance_id: str, message_ids: list[str] | None = None
    ) -> list[MessageRecord]:
        return self._reads.pending_messages(instance_id, message_ids)

    def pending_count(self, instance_id: str) -> int:
        return self._reads.pending_count(instance_id)

    def list_messages(
        self,
        instance_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[MessageRecord]:
        return self._reads.list_messages(instance_id, status=status, limit=limit, after=after)

    def queue_stats(self, instance_id: str, now_wall: float | None = None) -> dict[str, Any]:
        return self._reads.queue_stats(instance_id, now_wall)

    def totals(self) -> dict[str, int]:
        """Messages per status, every status present (0 when none)."""
        return self._reads.totals()

    # -- conflicts and the event log ---------------------------------------------------------

    def add_conflict(self, instance_id: str, at: float) -> Future[None]:
        return self._conflicts.add_conflict(instance_id, at)

    def conflicts_since(self, instance_id: str, since: float) -> list[float]:
        return self._conflicts.conflicts_since(instance_id, since)

    def all_conflicts_since(self, since: float) -> dict[str, list[float]]:
        return self._conflicts.all_conflicts_since(since)

    def conflicts_count_since(self, since: float) -> int:
        return self._conflicts.conflicts_count_since(since)

    def log_event(
        self, topic: str, body: dict[str, Any], *, owner: str | None = None
    ) -> Future[None]:
        return self._events.log_event(topic, body, owner=owner)

    def recent_events(self, limit: int = 100, prefix: str = "") -> list[dict[str, Any]]:
        """The last `limit` events whose topic starts with `prefix`, oldest first."""
        return self._events.recent_events(limit, prefix)

    def prune_events(self, older_than: float) -> int:
        """Delete the events older than `older_than` (wall seconds); how many went."""
        return self._events.prune_events(older_than)

    # -- inbox -------------------------------------------------------------------------------

    def add_incoming(
        self,
        instance_id: str,
        *,
        wa_id: str,
        chat: str,
        sender: str,
        sent_at: float,
        text: str | None = None,
        media: dict[str, Any] | None = None,
        media_data: bytes | None = None,
    ) -> Future[tuple[InboxRecord, bool]]:
        return self._inbox.add_incoming(
            instance_id,
            wa_id=wa_id,
            chat=chat,
            sender=sender,
            sent_at=sent_at,
            text=text,
            media=media,
            media_data=media_data,
        )

    def keep_media(self, inbox_id: str, data: bytes) -> Future[None]:
        return self._inbox.keep_media(inbox_id, data)

    def get_inbox(self, inbox_id: str) -> InboxRecord | None:
        return self._inbox.get_inbox(inbox_id)

    def inbox_media(self, inbox_id: str) -> bytes | None:
        return self._inbox.inbox_media(inbox_id)

    def inbox_owned(self, instance_id: str, inbox_id: str) -> bool:
        return self._inbox.owns(instance_id, inbox_id)

    def list_inbox(
        self, instance_id: str, *, after: str | None = None, limit: int = 100
    ) -> list[InboxRecord]:
        return self._inbox.list_inbox(instance_id, after=after, limit=limit)

    # -- webhooks ----------------------------------------------------------------------------

    @property
    def webhooks(self) -> Webhooks:
        return self._webhooks

    # -- retention ---------------------------------------------------------------------------

    def prune(
        self,
        older_than: float | None,
        *,
        keys_older_than: float | None = None,
        batch: int = 500,
        dry_run: bool = False,
        stop_when: Callable[[], bool] | None = None,
    ) -> dict[str, int]:
        return self._retention.prune(
            older_than,
            keys_older_than=keys_older_than,
            batch=batch,
            dry_run=dry_run,
            stop_when=stop_when,
        )

    # -- tokens ------------------------------------------------------------------------------

    def add_token(self, rec: TokenRecord) -> None:
        self._tokens.add_token(rec)

    def set_admin_token(self, rec: TokenRecord) -> int:
        return self._tokens.set_admin_token(rec)

    def find_token(self, token_hash: str) -> TokenRecord | None:
        return self._tokens.find_token(token_hash)

    def list_tokens(self) -> list[TokenRecord]:
        return self._tokens.list_tokens()

    def revoke_token(self, token_hash_or_prefix: str) -> bool:
        return self._tokens.revoke_token(token_hash_or_prefix)


if TYPE_CHECKING:
    from waz_actors.store.pg import PgConnections

    # mypy proves here that the SQLite Store meets the contract of api.py; a method that drifts
    # (a renamed keyword, another return type) fails the type check, not the PostgreSQL port.
    _conforms: StoreAPI = Store(Path("waz.db"))


__all__ = ["Store"]
