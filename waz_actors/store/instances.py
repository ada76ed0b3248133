"""The instances table: one row per WhatsApp session, its settings, desired and last state.

Each row carries its incarnation (owner.py): a new one when the id is created, and when a config
reload hands the instance to another tenant."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from waz_actors.errors import BadRequest, Exists, NotFound
from waz_actors.store.checks import (
    INSTANCE_ID_MAX,
    PENDING,
    need_desired,
    need_map,
    need_number,
    need_state,
    need_str,
    to_json,
)
from waz_actors.store.history import cancel_where
from waz_actors.store.owner import current, new_incarnation
from waz_actors.store.records import InstanceRecord
from waz_actors.store.sql import Conn, Database, IntegrityError
from waz_actors.store.writer import Tx


def not_found(instance_id: str) -> NotFound:
    return NotFound(f"instance {instance_id} not found", {"instance_id": instance_id})


def need_instance(c: Conn, instance_id: str) -> None:
    """Inside a write: NotFound unless the instance exists."""
    row = c.execute("SELECT 1 FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
    if row is None:
        raise not_found(instance_id)


def _check(rec: InstanceRecord) -> None:
    need_str(rec.instance_id, "instance_id")
    if len(rec.instance_id) > INSTANCE_ID_MAX:
        raise BadRequest(
            f"instance_id: at most {INSTANCE_ID_MAX} characters", {"field": "instance_id"}
        )
    need_str(rec.tenant, "tenant")
    need_str(rec.driver, "driver")
    need_desired(rec.desired)
    need_state(rec.state)
    need_map(rec.settings, "settings")


def _update(sql: str, args: tuple[Any, ...], instance_id: str) -> Callable[[Tx], None]:
    """A write of one instance row that raises NotFound when there is no such row."""

    def op(tx: Tx) -> None:
        if tx.conn.execute(sql, args).rowcount == 0:
            raise not_found(instance_id)

    return op


class Instances:
    def __init__(self, db: Database, wall: Callable[[], float]) -> None:
        self._db = db
        self._wall = wall

    def create_instance(self, rec: InstanceRecord) -> None:
        _check(rec)
        settings = to_json(rec.settings, "settings")
        need_number(rec.since, "since")
        need_number(rec.created_at, "created_at")
        row = (
            rec.instance_id,
            rec.tenant,
            rec.driver,
            settings,
            rec.desired,
            str(rec.state),
            rec.since,
            rec.jid,
            rec.last_code,
            rec.last_reason,
            rec.created_at,
        )

        now = self._wall()

        def op(tx: Tx) -> None:
            incarnation = new_incarnation(tx.conn, rec.instance_id, rec.tenant, now)
            try:
                tx.conn.execute(
                    "INSERT INTO instances (instance_id, tenant, driver, settings, desired, state,"
                    " since, jid, last_code, last_reason, created_at, incarnation)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, incarnation),
                )
            except IntegrityError:
                raise Exists(
                    f"instance {rec.instance_id} already exists", {"instance_id": rec.instance_id}
                ) from None

        self._db.writer.call(op)

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT * FROM instances WHERE instance_id = ?", (instance_id,)
            ).fetchone()
        return InstanceRecord.from_row(row) if row else None

    def list_instances(self, tenant: str | None = None) -> list[InstanceRecord]:
        with self._db.read() as conn:
            if tenant is None:
                rows = conn.execute("SELECT * FROM instances ORDER BY created_at, instance_id")
            else:
                rows = conn.execute(
                    "SELECT * FROM instances WHERE tenant = ? ORDER BY created_at, instance_id",
                    (tenant,),
                )
            return [InstanceRecord.from_row(r) for r in rows]

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
        need_state(state)
        need_number(since, "since")
        args = (str(state), since, jid, code, reason, instance_id)
        # Only the instance's owner saves its state: fenced on a cluster (a stale owner's
        # "closed" must not overwrite the new owner's "online").
        return self._db.writer.submit(
            _update(
                "UPDATE instances SET state = ?, since = ?, jid = ?, last_code = ?,"
                " last_reason = ? WHERE instance_id = ?",
                args,
                instance_id,
            ),
            owner=instance_id,
        )

    def set_desired(self, instance_id: str, desired: str) -> Future[None]:
        need_desired(desired)
        return self._db.writer.submit(
            _update(
                "UPDATE instances SET desired = ? WHERE instance_id = ?",
                (desired, instance_id),
                instance_id,
            )
        )

    def update_instance(
        self, instance_id: str, *, driver: str, tenant: str, settings: dict[str, Any], desired: str
    ) -> None:
        need_str(driver, "driver")
        need_str(tenant, "tenant")
        need_desired(desired)
        need_map(settings, "settings")
        blob = to_json(settings, "settings")
        now = self._wall()
        update = _update(
            "UPDATE instances SET driver = ?, tenant = ?, settings = ?, desired = ?"
            " WHERE instance_id = ?",
            (driver, tenant, blob, desired, instance_id),
            instance_id,
        )

        def op(tx: Tx) -> None:
            found = current(tx.conn, instance_id)
            if found is not None and found[1] != tenant:
                # Handed to another tenant: the old tenant's messages (recipients, texts) are
                # not the new tenant's to see or send. Its pending ones are cancelled, as when
                # an instance is deleted, and the instance starts a new incarnation.
                cancel_where(tx, instance_id, PENDING, "instance moved to another tenant", now)
                tx.conn.execute(
                    "UPDATE instances SET incarnation = ? WHERE instance_id = ?",
                    (new_incarnation(tx.conn, instance_id, tenant, now), instance_id),
                )
            update(tx)

        self._db.writer.submit(op).result()

    def delete_instance(self, instance_id: str, reason: str = "instance deleted") -> list[str]:
        now = self._wall()

        def op(tx: Tx) -> list[str]:
            need_instance(tx.conn, instance_id)
            ids = cancel_where(tx, instance_id, PENDING, reason, now)
            tx.conn.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))
            return ids

        return self._db.writer.call(op)


__all__ = ["Instances", "need_instance", "not_found"]
