"""The `whatsmeow` driver: one instance's WhatsApp session, run in a driver host by `HostPool`.

Every method only queues a command for the pool's I/O thread. Events come back on that thread and
reach the sink under the driver's lock, so once `disconnect()` returns nothing more is emitted.

neonize 0.5.2's `send_message` offers no way to choose the WhatsApp message id (whatsmeow's
`SendRequestExtra.ID` is reachable only through `send_fb_message`, which sends Messenger-style
messages). So the WhatsApp id is whatsmeow's own, returned in `SendResult.wa_id`; receipts are
translated back to our message id. A send whose host dies before its result is reported as
failed with an error starting with "outcome unknown" (transient): the message may have left.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from loguru import logger

from waz_actors.clock import FakeClock, RealClock
from waz_actors.drivers import wm_pg
from waz_actors.drivers.base import (
    Banned,
    CheckContacts,
    Conflict,
    Disconnected,
    DriverContext,
    DriverEvent,
    DriverFactory,
    DriverRequest,
    ListGroups,
    LoggedOut,
    OutgoingMessage,
    Receipt,
    RequestDone,
    SendResult,
)
from waz_actors.drivers.host.client import HostPool
from waz_actors.drivers.host.state import remove_db
from waz_actors.drivers.whatsmeow_events import WireError, from_wire

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")
_PHONE = re.compile(r"^\+?[0-9]{6,16}$")
_WA_IDS_KEPT = 5000  # wa_id -> message_id pairs kept for receipts
HOST_DIED = "driver host died"


def session_db_path(state_dir: str | Path, instance_id: str) -> Path:
    """`<state_dir>/whatsmeow/<instance_id>.db`; ValueError for ids unfit as a file name."""
    if not _SAFE_ID.match(instance_id):
        raise ValueError(f"instance id {instance_id!r} cannot name a session file")
    return Path(state_dir) / "whatsmeow" / f"{instance_id}.db"


_DB_FILES = ("", "-wal", "-shm", "-journal")


def session_location(state_dir: str | Path, instance_id: str, url: str = "") -> str:
    """Where the host keeps the session: a file under `state_dir`, or with a cluster's `url` the
    instance's schema in PostgreSQL, so that it follows the lease to any node."""
    path = session_db_path(state_dir, instance_id)  # the id check holds for both
    return wm_pg.session_url(url, instance_id) if url else str(path)


def has_session(state_dir: str | Path, instance_id: str, url: str = "") -> bool:
    """Whether a session is stored for this id (a new instance would reuse its login)."""
    if url:
        return wm_pg.exists(session_location(state_dir, instance_id, url))
    base = str(session_db_path(state_dir, instance_id))
    return any(Path(base + suffix).exists() for suffix in _DB_FILES)


def remove_session(state_dir: str | Path, instance_id: str, url: str = "") -> None:
    """Delete an instance's whatsmeow session (on instance.delete; logout does it itself)."""
    if url:
        wm_pg.drop(session_location(state_dir, instance_id, url))
        return
    base = str(session_db_path(state_dir, instance_id))
    for suffix in _DB_FILES:
        Path(base + suffix).unlink(missing_ok=True)


def _is_terminal(ev: DriverEvent) -> bool:
    """Events after which the host session is over (or will be stopped)."""
    if isinstance(ev, Disconnected):
        return not ev.transient or ev.reason.startswith("connect failed")
    return isinstance(ev, Conflict | LoggedOut | Banned)


class WhatsmeowDriver:
    # neonize 0.5.2's send_message takes no SendRequestExtra: every send gets a new WhatsApp id,
    # so a resend after an unknown outcome can reach the phone twice.
    dedup_resends = False

    def __init__(
        self, ctx: DriverContext, pool: HostPool, clock: RealClock | FakeClock | None = None
    ) -> None:
        self.instance_id = ctx.instance_id
        self.db = session_location(ctx.state_dir, ctx.instance_id, ctx.session_url)
        self._sink = ctx.sink
        self._pool = pool
        self._clock = clock or pool.clock
        # The settings it reads are declared in drivers/settings.py (instance.create checks them).
        self._proxy = str(ctx.settings.get("proxy") or pool.wm.proxy)
        self._lock = threading.Lock()
        self._gen = 0
        self._live = False  # a session of generation _gen may exist on the host
        self._inflight: set[str] = set()
        self._wa_ids: OrderedDict[str, str] = OrderedDict()
        self.host_id = pool.attach(self)

    # -- Driver ------------------------------------------------------------------------------

    def connect(self) -> None:
        self._start(phone=None)

    def request_pair_code(self, phone: str) -> None:
        if not isinstance(phone, str) or not _PHONE.match(phone):
            raise ValueError(f"bad phone number {phone!r}: expected 6 to 16 digits")
        digits = phone.lstrip("+")
        with self._lock:
            if self._live:
                self._pool.pair(self.instance_id, digits)
                return
        self._start(phone=digits)

    def disconnect(self) -> None:
        with self._lock:
            was_live, self._live = self._live, False
            self._gen += 1  # whatever the old session still says is dropped
            self._inflight.clear()
        if was_live:
            self._pool.close(self.instance_id, self.db)

    def send(self, message: OutgoingMessage) -> None:
        if not message.text and not message.media:
            error = "empty message"
            self._emit_now(SendResult(message.message_id, ok=False, error=error, permanent=True))
            return
        # The host fetches the media itself, with the daemon's limits (drivers/host/media.py).
        extra = (
            {"media": dict(message.media), "limits": self._pool.config.media.limits().as_dict()}
            if message.media
            else {}
        )
        with self._lock:
            if not self._live:
                ev = SendResult(message.message_id, ok=False, error="not connected")
                self._sink(ev)
                return
            self._inflight.add(message.message_id)
        self._pool.send(
            self.instance_id, message.message_id, message.to, message.text or "", **extra
        )

    def query(self, request: DriverRequest) -> None:
        """Groups, contact checks and media downloads, answered by the host (RequestDone)."""
        rid = request.request_id
        args: dict[str, Any]
        if isinstance(request, ListGroups):
            kind, args = "groups", {}
        elif isinstance(request, CheckContacts):
            kind, args = "contacts", {"numbers": list(request.numbers)}
        else:
            kind, args = "media", {"media": dict(request.media)}
        with self._lock:
            if not self._live:
                self._sink(RequestDone(rid, error="not connected"))
                return
        self._pool.to_session(
            self.instance_id, {"op": "query", "rid": rid, "kind": kind, "args": args}
        )

    def logout(self) -> None:
        with self._lock:
            live = self._live
        if live:
            self._pool.logout(self.instance_id)
            return
        try:  # outside the lock: in a cluster this is a round trip to PostgreSQL
            remove_db(self.db)
        except Exception as e:  # the schema stays until instance.delete; logged out anyway
            logger.error("[{}] could not remove the session: {}", self.instance_id, e)
        self._emit_now(LoggedOut(reason="logout requested"))

    def release(self) -> None:
        """Give the host slot back without touching the session's database: a driver built
        for a connect its actor's switch then refused (actors/instance/connection.py)."""
        self.disconnect()
        self._pool.detach(self.instance_id)

    def delete_session(self) -> None:
        """Close any session and remove the database file (instance.delete)."""
        self.disconnect()
        self._pool.close(self.instance_id, self.db, remove=True)
        self._pool.detach(self.instance_id)

    # -- pool callbacks (pool I/O thread) ---------------------------------------------------

    def on_host_event(self, gen: int, body: dict[str, Any]) -> None:
        with self._lock:
            if gen != self._gen and gen != -1:
                return
            try:
                ev = from_wire(body, now=self._clock.now(), time_scale=self._pool.time_scale)
            except WireError as e:
                logger.error("[{}] bad event from whatsmeow host: {}", self.instance_id, e)
                return
            if gen == -1 and not isinstance(ev, SendResult | RequestDone):
                return
            out = self._translate(ev)
            if out is None:
                return
            if _is_terminal(out):
                self._live = False
                self._fail_inflight("outcome unknown: session ended during send")
            self._sink(out)

    def on_session_closed(self, gen: int) -> None:
        with self._lock:
            if gen == self._gen and self._live:
                self._live = False
                self._fail_inflight("outcome unknown: session ended during send")
                self._sink(Disconnected(code=None, reason="session ended", transient=True))

    def on_host_died(self, gen: int) -> None:
        with self._lock:
            if gen == self._gen and self._live:
                self._live = False
                self._fail_inflight(f"outcome unknown: {HOST_DIED} during send")
                self._sink(Disconnected(code=None, reason=HOST_DIED, transient=True))

    # -- helpers (called with the lock held) --------------------------------------------------

    def _start(self, phone: str | None) -> None:
        with self._lock:
            if self._live:
                return  # one session per instance; the actor disconnects first
            self._gen += 1
            self._live = True
            gen = self._gen
        self._pool.open(self.instance_id, gen, self.db, self._proxy, phone=phone)

    def _emit_now(self, ev: DriverEvent) -> None:
        with self._lock:
            self._sink(ev)

    def _translate(self, ev: DriverEvent) -> DriverEvent | None:
        if isinstance(ev, SendResult):
            self._inflight.discard(ev.message_id)
            if ev.wa_id:
                self._wa_ids[ev.wa_id] = ev.message_id
                while len(self._wa_ids) > _WA_IDS_KEPT:
                    self._wa_ids.popitem(last=False)
            return ev
        if isinstance(ev, Receipt):
            wa_id = ev.wa_id or ev.message_id
            mid = self._wa_ids.get(wa_id, "")
            # Not found (sent before a restart, or evicted): the instance looks the wa_id up in
            # the store, where it was saved with the message when the send answered.
            return Receipt(message_id=mid, kind=ev.kind, wa_id=wa_id)
        return ev

    def _fail_inflight(self, error: str) -> None:
        for mid in sorted(self._inflight):
            self._sink(SendResult(message_id=mid, ok=False, error=error))
        self._inflight.clear()


def make_whatsmeow_factory(pool: HostPool) -> DriverFactory:
    """The factory the daemon runtime registers for driver "whatsmeow"."""

    def factory(ctx: DriverContext) -> WhatsmeowDriver:
        return WhatsmeowDriver(ctx, pool)

    return factory


__all__ = [
    "HOST_DIED",
    "WhatsmeowDriver",
    "has_session",
    "make_whatsmeow_factory",
    "remove_session",
    "session_db_path",
    "session_location",
]
