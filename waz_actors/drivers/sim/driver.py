"""The `sim` driver: one instance's session on a fake network (in-process or networked).

The driver holds at most one session. Every session gets a generation number; events are passed
to the actor's sink only while their generation is current, checked under the driver's lock, so
once `disconnect()` returns nothing of the closed session reaches the actor, even if the network
had already decided to emit it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from waz_actors.clock import Clock
from waz_actors.config import SimConfig
from waz_actors.drivers import media
from waz_actors.drivers.base import (
    DriverContext,
    DriverEvent,
    DriverFactory,
    DriverRequest,
    OutgoingMessage,
    RequestDone,
    SendResult,
    Sink,
)
from waz_actors.drivers.sim.checks import check_message, check_phone
from waz_actors.drivers.sim.model import FINAL_EVENTS, TimerScheduler
from waz_actors.drivers.sim.network import SimNetwork
from waz_actors.net.fetch import FetchError, Limits


class SimSessionLike(Protocol):
    def send(self, message: OutgoingMessage) -> None: ...
    def logout(self) -> None: ...
    def request_pair_code(self, phone: str) -> None: ...
    def close(self) -> None: ...


class SimNetworkLike(Protocol):
    """What SimNetwork and RemoteSimNetwork both offer."""

    def open_session(self, instance_id: str, sink: Sink) -> SimSessionLike: ...
    def logout(self, instance_id: str, sink: Sink) -> None: ...
    def post(self, fn: Callable[[], None]) -> None: ...
    def inject(self, instance_id: str, kind: str, **params: Any) -> None: ...
    def stats(self) -> dict[str, Any]: ...
    def complete_pairing(self, instance_id: str) -> None: ...

    # Whether a resend of a message id reaches the recipient once (see Driver.dedup_resends).
    dedup_resends: bool


class SimDriver:
    def __init__(
        self, ctx: DriverContext, network: SimNetworkLike, limits: Limits | None = None
    ) -> None:
        self._ctx = ctx
        self._network = network
        self._lock = threading.RLock()  # reentrant: the actor's sink may call back in
        self._gen = 0
        self._session: SimSessionLike | None = None
        self._limits = limits or Limits()
        self._fetched = media.FetchedInfos()
        # The sim network drops a resend of a delivered id unless configured not to.
        self.dedup_resends = network.dedup_resends

    @property
    def instance_id(self) -> str:
        return self._ctx.instance_id

    @property
    def connected_session(self) -> SimSessionLike | None:
        """The open session, if any (for tests and diagnostics)."""
        return self._session

    def connect(self) -> None:
        with self._lock:
            if self._session is not None:
                # Two sessions on one set of credentials is exactly the 440 fight we exist to
                # prevent: refuse, loudly, rather than open a second one.
                logger.warning(
                    "sim {}: connect() while a session is open; ignored", self.instance_id
                )
                return
            self._gen += 1
            gen = self._gen
            self._session = self._network.open_session(
                self.instance_id, lambda event: self._on_event(gen, event)
            )

    def disconnect(self) -> None:
        with self._lock:
            self._gen += 1
            session, self._session = self._session, None
        # Closed outside the lock: the network may be handing this session an event right now,
        # waiting for our lock; the generation bump already silences it.
        if session is not None:
            session.close()

    def send(self, message: OutgoingMessage) -> None:
        check_message(message)
        if message.media is not None:
            info = self._fetched.get(message.message_id)
            if info is None:
                # Fetched on a worker thread: the actor calling us must not wait on a URL.
                with self._lock:
                    gen = self._gen
                media.submit(lambda: self._fetch_then_send(gen, message))
                return
            message = dataclasses.replace(message, media={**message.media, **info})
        with self._lock:
            session, gen = self._session, self._gen
        if session is not None:
            session.send(message)
            return
        result = SendResult(message.message_id, ok=False, error="not connected", permanent=False)
        self._network.post(lambda: self._on_event(gen, result))

    def _fetch_then_send(self, gen: int, message: OutgoingMessage) -> None:
        """The sim "uploads" nothing: it keeps what it fetched (size, sha256) and delivers that."""
        try:
            fetched = media.fetch_for(message, self._limits)
        except FetchError as e:
            failed = media.media_error(message.message_id, e)
            self._network.post(lambda: self._on_event(gen, failed))
            return
        except Exception as e:  # a bug here must fail the message, not leave it in flight
            logger.exception("sim {}: media fetch crashed", self.instance_id)
            failed = SendResult(message.message_id, ok=False, error=f"media: {e}")
            self._network.post(lambda: self._on_event(gen, failed))
            return
        fetched.discard()
        self._fetched.put(message.message_id, fetched.info())
        with self._lock:
            if gen != self._gen:
                # The session closed during the fetch: the actor has put the message back in
                # its queue, so sending it on a newer session now would deliver it twice.
                return
        self.send(message)

    def logout(self) -> None:
        with self._lock:
            session, gen = self._session, self._gen
        if session is not None:
            session.logout()
        else:
            self._network.logout(self.instance_id, lambda event: self._on_event(gen, event))

    def request_pair_code(self, phone: str) -> None:
        check_phone(phone)
        with self._lock:
            if self._session is None:
                self.connect()  # a pairing code needs the pairing connection first
            session = self._session
        assert session is not None
        session.request_pair_code(phone)

    def query(self, request: DriverRequest) -> None:
        """Groups, contact checks and media: answered by the in-process network (a remote sim
        server does not answer requests: the answer is an error)."""
        with self._lock:
            session, gen = self._session, self._gen
        ask = getattr(self._network, "query", None)
        if session is None or ask is None:
            error = "not connected" if session is None else "the remote sim answers no requests"
            done = RequestDone(request.request_id, error=error)
            self._network.post(lambda: self._on_event(gen, done))
            return
        ask(self.instance_id, request, lambda event: self._on_event(gen, event))

    def _on_event(self, gen: int, event: DriverEvent) -> None:
        with self._lock:
            if gen != self._gen:
                return
            if isinstance(event, FINAL_EVENTS):
                self._session = None  # the network closed it; the next connect() is allowed
            if isinstance(event, SendResult) and event.media is None:
                info = self._fetched.get(event.message_id)
                if info is not None:
                    event = dataclasses.replace(event, media=info)
            self._ctx.sink(event)


def has_session(state_dir: str | Path, instance_id: str) -> bool:
    """The sim stores nothing under the state dir: its logins live in the (fake) network."""
    return False


def remove_session(state_dir: str | Path, instance_id: str) -> None:
    """Nothing to remove (see `has_session`)."""


def make_sim_factory(network: SimNetworkLike, limits: Limits | None = None) -> DriverFactory:
    """`limits`: the daemon's [media] settings (default: Limits(), private URLs refused)."""

    def factory(ctx: DriverContext) -> SimDriver:
        return SimDriver(ctx, network, limits)

    return factory


def network_from_config(cfg: SimConfig, scheduler: TimerScheduler, clock: Clock) -> SimNetworkLike:
    """The in-process network, or a client of a sim server when `sim.endpoint` is set."""
    if cfg.endpoint:
        from waz_actors.drivers.sim.remote import RemoteSimNetwork

        return RemoteSimNetwork(cfg.endpoint, clock=clock)
    return SimNetwork(
        scheduler,
        clock,
        connect_latency=cfg.connect_latency,
        send_latency=cfg.send_latency,
        qr_interval=cfg.qr_interval,
        lost_ack_delivery_rate=cfg.lost_ack_delivery_rate,
        dedup_resends=cfg.dedup_resends,
    )
