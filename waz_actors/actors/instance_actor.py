"""The thin actor around `Instance`: it routes messages and reports failure upward."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka
from loguru import logger

from waz_actors.actors.instance import Instance, InstanceDeps
from waz_actors.actors.messages import ChildFailed, Ping, Pong
from waz_actors.store.records import InstanceRecord

if TYPE_CHECKING:
    from waz_actors.actors.supervisor import SupervisorActor


class InstanceActor(pykka.ThreadingActor):
    def __init__(
        self,
        deps: InstanceDeps,
        record: InstanceRecord,
        supervisor: pykka.ActorRef[SupervisorActor],
        restart_tripped: str | None = None,
        conflicts: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.supervisor = supervisor
        self.instance_id = record.instance_id
        self.instance = Instance(
            deps, record, self.actor_ref.tell, restart_tripped=restart_tripped, conflicts=conflicts
        )

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            self.supervisor.tell(Pong(self.instance_id, message.seq))
            return None
        return self.instance.handle(message)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # The session must be fully closed before the supervisor starts a replacement.
        try:
            self.instance.shutdown()
        except Exception:
            logger.bind(instance=self.instance_id).exception("cleanup after failure failed")
        self.supervisor.tell(
            ChildFailed(self.instance_id, self.actor_urn, f"{exception_type}: {exception_value}")
        )

    def on_stop(self) -> None:
        self.instance.shutdown()
