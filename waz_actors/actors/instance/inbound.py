"""What comes in from WhatsApp besides the session's life: received messages, and the answers
to requests (group list, contact check, media download).

A received message is written to the inbox first and announced (`message.<id>.in`) only once
its commit is done, so a client that saw the event finds the row even after a `kill -9`. The
commit's callback publishes from the writer's thread: the bus is made for any thread, and the
actor does not wait on the disk.

A request goes to the driver with an id and the caller's Future; the driver's `RequestDone`
with that id answers it. The caller waits at most its timeout (`busy` then). What is still
pending when the session leaves `online` is answered `invalid_state`, and an entry nobody
answered is dropped after `STALE_AFTER` times the ask timeout, so the table never grows.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import Future
from typing import Any

from waz_actors.actors.instance.connection import Connection
from waz_actors.actors.instance.context import Context
from waz_actors.drivers import base as driver
from waz_actors.errors import Busy, InvalidState, WazError
from waz_actors.store.inbox import InboxRecord, inbox_event
from waz_actors.types import InstanceState as S

STALE_AFTER = 4.0  # ask timeouts


class Inbound:
    def __init__(self, ctx: Context, connection: Connection) -> None:
        self.ctx = ctx
        self.connection = connection
        self.pending: dict[str, tuple[Future[Any], float]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ received messages

    def on_incoming(self, ev: driver.IncomingMessage) -> None:
        ctx = self.ctx
        keep = ctx.cfg.inbox.keep_media
        data = ev.media_data
        if not keep or data is None or len(data) > ctx.cfg.inbox.max_media_bytes:
            data = None
        try:
            fut = ctx.deps.store.add_incoming(
                ctx.id,
                wa_id=ev.wa_id,
                chat=ev.chat,
                sender=ev.sender,
                sent_at=ev.time,
                text=ev.text,
                media=dict(ev.media) if ev.media is not None else None,
                media_data=data,
            )
        except WazError as e:
            # a driver's malformed event must not take the instance down with it
            ctx.log.error("received message dropped: {}", e)
            return
        fut.add_done_callback(self._stored)

    def _stored(self, fut: Future[tuple[InboxRecord, bool]]) -> None:
        ctx = self.ctx
        error = fut.exception()
        if error is not None:
            # Not stored (the instance was deleted meanwhile, or the daemon is stopping): the
            # message is not acknowledged to anyone; whatsmeow will offer it again on reconnect.
            ctx.log.warning("received message not stored: {}", error)
            return
        rec, created = fut.result()
        if not created:
            return  # a redelivery: stored and announced the first time
        ctx.deps.bus.publish(f"message.{ctx.id}.in", inbox_event(rec))
        if ctx.cfg.inbox.keep_media and rec.media and not rec.kept:
            self._keep_later(rec)

    def _keep_later(self, rec: InboxRecord) -> None:
        """keep_media with a driver that gave no bytes: fetch them now, store them when here."""
        assert rec.media is not None
        reply: Future[Any] = Future()
        store, limit = self.ctx.deps.store, self.ctx.cfg.inbox.max_media_bytes

        def done(f: Future[Any]) -> None:
            if f.exception() is None and isinstance(f.result(), bytes):
                if len(f.result()) <= limit:
                    store.keep_media(rec.inbox_id, f.result())
            else:
                self.ctx.log.info("media of {} not kept: {}", rec.inbox_id, f.exception())

        reply.add_done_callback(done)
        from waz_actors.actors.messages import Query

        self.ctx.post(Query(driver.FetchMedia("", rec.wa_id, rec.media), reply))

    # ------------------------------------------------------------------ requests

    def query(self, request: driver.DriverRequest, reply: Future[Any] | None) -> None:
        """Pass a request to the driver; `reply` is answered by its RequestDone."""
        drv = self.connection.driver
        if self.ctx.state != S.ONLINE or drv is None:
            raise InvalidState(
                f"instance {self.ctx.id} is {self.ctx.state}; this needs it online",
                {"state": str(self.ctx.state)},
            )
        if not hasattr(drv, "query"):
            raise InvalidState(f"the {self.ctx.record.driver} driver cannot answer this")
        self._drop_stale()
        rid = f"{self.ctx.id}:{next(self._ids)}"
        self.pending[rid] = (reply if reply is not None else Future(), time.monotonic())
        request = _with_id(request, rid)
        drv.query(request)

    def on_done(self, ev: driver.RequestDone) -> None:
        entry = self.pending.pop(ev.request_id, None)
        if entry is None or entry[0].done():
            return  # answered already, or given up
        if ev.error is not None:
            entry[0].set_exception(InvalidState(ev.error))
        else:
            entry[0].set_result(ev.result)

    def fail_all(self, error: WazError) -> None:
        pending, self.pending = self.pending, {}
        for reply, _ in pending.values():
            if not reply.done():
                reply.set_exception(error)

    def _drop_stale(self) -> None:
        limit = time.monotonic() - STALE_AFTER * self.ctx.cfg.control.ask_timeout
        for rid in [r for r, (_, t) in self.pending.items() if t < limit]:
            reply, _ = self.pending.pop(rid)
            if not reply.done():
                reply.set_exception(Busy("the driver did not answer"))


def _with_id(request: driver.DriverRequest, rid: str) -> driver.DriverRequest:
    import dataclasses

    return dataclasses.replace(request, request_id=rid)


__all__ = ["STALE_AFTER", "Inbound", "inbox_event"]
