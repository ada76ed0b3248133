"""What the parts of one instance share: identity, services, timers, and its visible state.

The state (and what goes with it: reason, code, JID, wanted state) is written only through
`set_state`, which persists it, tells subscribers and refreshes the status board.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loguru import logger

from waz_actors.actors.board import InstanceSnapshot
from waz_actors.actors.instance.deps import InstanceDeps
from waz_actors.actors.instance.timers import Timers
from waz_actors.store.records import InstanceRecord
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M

_LOUD = (S.TRIPPED, S.BANNED, S.LOGGED_OUT)


class Context:
    def __init__(
        self,
        deps: InstanceDeps,
        record: InstanceRecord,
        post: Callable[[object], None],
        snapshot: Callable[[bool], InstanceSnapshot],
    ) -> None:
        self.deps = deps
        self.cfg = deps.cfg
        self.clock = deps.clock
        self.id = record.instance_id
        self.record = record
        self.post = post
        self.log = logger.bind(instance=self.id)
        self.timers = Timers(deps.scheduler, post)
        self._snapshot = snapshot  # the coordinator's: it sees every part
        self._light_due = False
        self.state: S = S.STOPPED
        self.since = self.clock.wall()
        self.desired = record.desired
        self.jid = record.jid
        self.last_code: int | None = record.last_code
        self.last_reason: str | None = record.last_reason

    # ------------------------------------------------------------------ state

    def want(self, desired: str) -> None:
        if self.desired != desired:
            self.desired = desired
            self.deps.store.set_desired(self.id, desired)

    def set_state(self, state: S, reason: str, *, code: int | None = None) -> None:
        previous = self.state
        self.state = state
        self.since = self.clock.wall()
        self.last_reason = reason
        if code is not None:
            self.last_code = code
        if state != previous:
            log = self.log.warning if state in _LOUD else self.log.info
            log("{} -> {}: {}", previous, state, reason)
        self.deps.store.save_state(
            self.id, str(state), since=self.since, reason=reason, code=self.last_code, jid=self.jid
        )
        body = {
            "time": self.since,
            "instance_id": self.id,
            "state": str(state),
            "previous": str(previous),
            "reason": reason,
            "code": self.last_code,
        }
        self.deps.store.log_event(f"instance.{self.id}.state", body, owner=self.id)
        self.deps.bus.publish(f"instance.{self.id}.state", body)
        self.publish_snapshot()

    # ------------------------------------------------------------------ telling others

    def emit_message(
        self,
        message_id: str,
        status: M | str,
        reason: str,
        *,
        attempts: int | None = None,
        wa_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "time": self.clock.wall(),
            "instance_id": self.id,
            "message_id": message_id,
            "status": str(status),
            "reason": reason,
        }
        if attempts is not None:
            body["attempts"] = attempts
        if wa_id is not None:
            body["wa_id"] = wa_id
        if extra:
            body.update(extra)
        self.deps.bus.publish(f"message.{self.id}.status", body)

    def alarm(self, kind: str, message: str) -> None:
        body = {"time": self.clock.wall(), "kind": kind, "instance_id": self.id, "message": message}
        self.deps.store.log_event("daemon.alarm", body)
        self.deps.bus.publish("daemon.alarm", body)

    def publish_snapshot(self, light: bool = False) -> None:
        """A full snapshot now; a light one (queue and counters) once the message is handled."""
        if light:
            self._light_due = True
            return
        self._light_due = False
        self.deps.board.put(self._snapshot(False))

    def flush_light(self) -> None:
        # One light snapshot per message handled, however many steps asked for one.
        if self._light_due:
            self._light_due = False
            self.deps.board.put(self._snapshot(True))

    # ------------------------------------------------------------------ time

    def wall_of(self, t: float) -> float:
        """A daemon-clock time as Unix time, which is what clients are shown."""
        return self.clock.wall() + (t - self.clock.now()) * self.cfg.daemon.time_scale
