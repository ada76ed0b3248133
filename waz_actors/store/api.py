"""What the daemon asks of its store: the contract every backend implements.

The actors, the fleet, the runtime and the control commands use only these methods, so the
second backend (PostgreSQL) fits in without touching them. `waz_actors.store.Store` implements it
on SQLite or, given a postgresql:// URL, on PostgreSQL (store/pg.py); it has a few more
methods (submit, stats, pragmas, schema_version, backup, totals, recent_events,
prune_events, conflicts_count_since) for tests and tools, outside this contract.

Argument errors (bad status, wrong type) raise BadRequest at once, before anything is written.
Errors that depend on what is stored (NotFound, Exists, QueueFull, InvalidState) come through the
Future of a write, or are raised by the methods that wait. A Future resolves only once its write
is durable. Times are wall-clock seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from waz_actors.store.campaigns import Campaigns
from waz_actors.store.inbox import InboxRecord
from waz_actors.store.records import InstanceRecord, MessageRecord, TokenRecord
from waz_actors.store.webhooks import Webhooks


@runtime_checkable
class StoreAPI(Protocol):
    # -- life cycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and migrate; RuntimeError when already open."""
        ...

    def close(self) -> None:
        """Commit everything already submitted, then disconnect. A write racing close fails
        with ShuttingDown (one nobody waits for is dropped with a log line); afterwards every
        method raises ShuttingDown."""
        ...

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything submitted so far is committed (a cluster node releasing a
        lease: the closed session's writes first)."""
        ...

    @property
    def campaigns(self) -> Campaigns:
        """Campaigns and their recipients (store/campaigns.py)."""
        ...

    # -- instances ---------------------------------------------------------------------------

    def create_instance(self, rec: InstanceRecord) -> None:
        """Waits for the commit; Exists when the id is taken."""
        ...

    def get_instance(self, instance_id: str) -> InstanceRecord | None: ...

    def list_instances(self, tenant: str | None = None) -> list[InstanceRecord]:
        """Oldest first; every tenant's when `tenant` is None."""
        ...

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
        """Record the instance's state; reason, code and jid are written as given. An owner
        write (fenced on a cluster)."""
        ...

    def set_desired(self, instance_id: str, desired: str) -> Future[None]:
        """`desired` is "running" or "stopped"."""
        ...

    def update_instance(
        self, instance_id: str, *, driver: str, tenant: str, settings: dict[str, Any], desired: str
    ) -> None:
        """Config reload: new driver, tenant, settings or autostart for an existing instance."""
        ...

    def delete_instance(self, instance_id: str, reason: str = "instance deleted") -> list[str]:
        """Cancel every pending message (with history), drop conflicts and the instance row;
        returns the ids of the cancelled messages."""
        ...

    # -- the outbox --------------------------------------------------------------------------

    def enqueue(self, rec: MessageRecord, *, max_queue: int) -> Future[tuple[MessageRecord, bool]]:
        """Insert the message as queued; the Future resolves after the commit.

        Resolves to (record, True) when inserted, (the earlier record, False) when the tenant
        already used this idempotency key; raises QueueFull when the instance has max_queue
        pending messages, NotFound for an unknown instance, Exists for a reused message id.
        """
        ...

    def get_message(self, message_id: str) -> MessageRecord | None: ...

    def history(self, message_id: str) -> list[dict[str, Any]]:
        """The message's status changes, oldest first: maps of status, time and reason."""
        ...

    def message_by_wa_id(self, instance_id: str, wa_id: str) -> str | None:
        """Our message id for WhatsApp's message id on this instance (None if unknown)."""
        ...

    def record_receipt(self, message_id: str, kind: str, at: float) -> Future[bool]:
        """Store a delivered/read receipt's wall time (first one wins; read implies delivered).
        True if it changed the message."""
        ...

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
        """Set the status (and attempts/error/wa_id/media_info/flags when given) and add a
        history row.

        With `only_if`, updates only when the current status is one of those (False otherwise).
        A final status never changes again, except failed -> queued (InvalidState otherwise).
        `owner`: the instance whose owner writes this from its send path (the message must be
        its own); fenced on a cluster, StaleEpoch when its lease epoch is not current.
        """
        ...

    def set_status(self, message_id: str, status: str, **changes: Any) -> None:
        """update_message for a caller that does not wait (an instance on its send path): the
        same write in the same order, without a Future; a refused change is logged."""
        ...

    def pending_messages(
        self, instance_id: str, message_ids: list[str] | None = None
    ) -> list[MessageRecord]:
        """Queued and sending messages, oldest first (only those of `message_ids` if given)."""
        ...

    def pending_count(self, instance_id: str) -> int:
        """Queued + sending, as committed; cheap enough to ask on every event."""
        ...

    def list_messages(
        self,
        instance_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[MessageRecord]:
        """A page in insertion order; `after` is the last message id of the previous page."""
        ...

    def queue_stats(self, instance_id: str, now_wall: float | None = None) -> dict[str, Any]:
        """depth, in_flight, oldest_age (seconds, or None) and the count of each final status."""
        ...

    def fence_writes(
        self,
        epoch_of: Callable[[str], int | None],
        on_stale: Callable[[str, int | None], None] | None = None,
    ) -> None:
        """Clustered on PostgreSQL: every owner write (save_state, add_conflict, a status
        write naming its `owner`, log_event with `owner`, recover_sending of one instance, and
        any `sending`) carries this node's lease epoch of its instance, `epoch_of(instance)`
        at submission (None: not ours), and is refused with StaleEpoch unless that is the
        current epoch of a held, unexpired lease; `on_stale(instance, epoch)` hears of each
        refusal (store/fencing.py). RuntimeError on SQLite."""
        ...

    def wake_others(self, node_id: str) -> None:
        """Clustered on PostgreSQL: this daemon is node `node_id`; a send it accepts for an
        instance it owns is handed over in memory, so only another owner is woken."""
        ...

    def recover_sending(self, instance_id: str | None = None) -> int:
        """At start-up: every `sending` message goes back to `queued` with the same id. Given
        an instance: only its own (a cluster node taking the instance's lease)."""
        ...

    def cancel_pending(
        self, instance_id: str, *, status: str = "queued", reason: str = "purged"
    ) -> list[str]:
        """Cancel the instance's messages in `status` (queued or sending); returns their ids."""
        ...

    def requeue_failed(
        self, instance_id: str, message_ids: list[str] | None, *, max_queue: int
    ) -> list[str]:
        """Failed -> queued (attempts reset), oldest first, while the queue has room."""
        ...

    # -- conflicts and the event log ---------------------------------------------------------

    def add_conflict(self, instance_id: str, at: float) -> Future[None]:
        """An owner write (fenced on a cluster)."""
        ...

    def conflicts_since(self, instance_id: str, since: float) -> list[float]:
        """The instance's conflict times since `since`, oldest first."""
        ...

    def all_conflicts_since(self, since: float) -> dict[str, list[float]]:
        """Every instance's conflicts since `since`, in one query (start-up of a large fleet)."""
        ...

    def log_event(
        self, topic: str, body: dict[str, Any], *, owner: str | None = None
    ) -> Future[None]:
        """`owner`: the instance whose owner logs this (its state changes): fenced."""
        ...

    # -- inbox (store/inbox.py) ---------------------------------------------------------------

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
        """Store a received message under the instance's tenant and incarnation; the Future
        resolves after the commit with (the row, True when new). The same WhatsApp id again
        gives the first row and False, and changes nothing."""
        ...

    def keep_media(self, inbox_id: str, data: bytes) -> Future[None]:
        """Attach media bytes to a stored message that has none yet."""
        ...

    def get_inbox(self, inbox_id: str) -> InboxRecord | None: ...

    def inbox_media(self, inbox_id: str) -> bytes | None:
        """The kept media bytes of a received message, None when not kept."""
        ...

    def inbox_owned(self, instance_id: str, inbox_id: str) -> bool:
        """The row belongs to the instance's current tenant and incarnation."""
        ...

    def list_inbox(
        self, instance_id: str, *, after: str | None = None, limit: int = 100
    ) -> list[InboxRecord]:
        """The instance's own received messages, oldest first, after the row `after`."""
        ...

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
        """Delete what is settled and old: final messages (sent, failed, cancelled, expired)
        last changed before `older_than`, with their history, and events before it; clear the
        idempotency keys of final messages accepted before `keys_older_than`. None keeps that
        kind. Never touches a pending message.

        Works in writes of at most `batch` rows, each committed alone, so other writes never
        wait long; `stop_when` is asked between batches. Returns the counts per kind: messages,
        history, events, idempotency_keys, inbox (received messages stored before
        `older_than`), webhook_deliveries (done ones with no attempt since `older_than`) and
        webhook_events (their bodies, once no delivery refers to them). With `dry_run`, counts
        what would go and writes nothing.
        """
        ...

    # -- webhooks ----------------------------------------------------------------------------

    @property
    def webhooks(self) -> Webhooks:
        """Subscriptions and the delivery outbox (store/webhooks.py). Its tap writes the
        deliveries inside the other families' writes: a backend implements both together."""
        ...

    # -- tokens ------------------------------------------------------------------------------

    def add_token(self, rec: TokenRecord) -> None:
        """Waits for the commit; Exists when the hash is already stored."""
        ...

    def set_admin_token(self, rec: TokenRecord) -> int:
        """Store `rec` (an admin token) if absent and revoke every other admin token, in one
        transaction; returns how many were revoked. Admin rotation and start-up use it."""
        ...

    def find_token(self, token_hash: str) -> TokenRecord | None: ...

    def list_tokens(self) -> list[TokenRecord]: ...

    def revoke_token(self, token_hash_or_prefix: str) -> bool:
        """Revoke by full hash or a unique prefix (at least 6 characters); False if none match."""
        ...


__all__ = ["StoreAPI"]
