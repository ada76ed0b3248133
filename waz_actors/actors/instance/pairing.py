"""Linking a device: the QR code or pairing code on show, and the pair requests waiting for one."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from waz_actors.actors.instance.context import Context
from waz_actors.drivers import base as driver
from waz_actors.errors import InvalidState
from waz_actors.types import InstanceState as S


class Pairing:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.shown: dict[str, Any] | None = None  # {"qr", "expires_at"} or {"code"}
        self.phone: str | None = None  # a pair request by phone number waits for its code
        self._waiters: list[Future[dict[str, Any]]] = []

    def wait(self, reply: Future[dict[str, Any]] | None) -> None:
        """`reply` is answered by the next code shown (or fails with the attempt)."""
        if reply is not None:
            self._waiters.append(reply)

    def forget(self) -> None:
        """The session closed: whatever it showed is void."""
        self.shown = None
        self.phone = None

    def fail_waiters(self, error: Exception) -> None:
        for w in self._waiters:
            if not w.done():
                w.set_exception(error)
        self._waiters.clear()

    def _answer(self, result: dict[str, Any]) -> None:
        for w in self._waiters:
            if not w.done():
                w.set_result(result)
        self._waiters.clear()

    # ------------------------------------------------------------------ driver events

    def on_qr(self, ev: driver.QrCode) -> None:
        ctx = self.ctx
        expires_at = ctx.clock.wall() + ev.expires_in * ctx.cfg.daemon.time_scale
        self.shown = {"qr": ev.code, "expires_at": expires_at}
        self._enter("waiting for the phone to scan the QR code")
        self._publish({"qr": ev.code, "expires_at": expires_at})
        if not self.phone:  # a pair request with a phone waits for its code
            self._answer(dict(self.shown))

    def on_pair_code(self, ev: driver.PairCode) -> None:
        self.shown = {"code": ev.code}
        self._enter("waiting for the pairing code on the phone")
        self._publish({"code": ev.code})
        self._answer({"code": ev.code})

    def _publish(self, secret: dict[str, Any]) -> None:
        """A new code: everyone may know one was shown (`instance.<id>.qr`, without it); the
        code itself is a private event, which reaches only the stream of the client that asked
        for the pairing: whoever reads a QR can link their own phone to this instance."""
        ctx = self.ctx
        head = {"time": ctx.clock.wall(), "instance_id": ctx.id, "tenant": ctx.record.tenant}
        kind = "code" if "code" in secret else "qr"
        public = {**head, "kind": kind}
        if "expires_at" in secret:
            public["expires_at"] = secret["expires_at"]
        ctx.deps.bus.publish(f"instance.{ctx.id}.qr", public)
        ctx.deps.bus.publish_private(f"instance.{ctx.id}.qr", {**head, **secret})

    def on_paired(self, ev: driver.Paired) -> None:
        self.ctx.jid = ev.jid
        self.ctx.timers.cancel("pairing_deadline")
        self.ctx.log.info("paired as {}", ev.jid)

    def on_linked(self, jid: str) -> None:
        """The connection came up linked: a pair request still waiting is refused now (the
        stored session was still valid: no QR, no code), as pairing an online instance is,
        not by a timeout."""
        self.fail_waiters(
            InvalidState(
                f"instance {self.ctx.id} is already linked (online as {jid}); "
                "log out before pairing again"
            )
        )
        self.phone = None

    def _enter(self, reason: str) -> None:
        ctx = self.ctx
        if ctx.state != S.PAIRING:
            ctx.timers.cancel("connect_timeout")
            ctx.timers.schedule("pairing_deadline", ctx.cfg.connection.pairing_timeout)
            ctx.set_state(S.PAIRING, reason)
