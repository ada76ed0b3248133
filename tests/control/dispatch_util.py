"""Calling commands through a Dispatcher over a real store and fleet (sim driver), no sockets."""

from __future__ import annotations

from typing import Any

from tests.control.conftest import TestDaemon
from tests.waiting import wait_until
from waz_actors.control.auth import Auth
from waz_actors.control.commands import REGISTRY
from waz_actors.control.dispatch import Dispatcher

PHONE = "5511999999999"


class Caller:
    """Requests as maps through `Dispatcher.__call__`, the same path the server takes."""

    def __init__(self, dispatcher: Dispatcher, token: str | None) -> None:
        self.dispatcher = dispatcher
        self.token = token
        self._next_id = 0

    def ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        """The whole reply map (ok or error)."""
        self._next_id += 1
        req: dict[str, Any] = {"v": 1, "id": self._next_id, "cmd": cmd, "token": self.token}
        if args:
            req["args"] = args
        reply = self.dispatcher(req)
        assert reply["v"] == 1 and reply["id"] == self._next_id
        return reply

    def ok(self, cmd: str, **args: Any) -> Any:
        reply = self.ask(cmd, **args)
        assert reply["ok"] is True, reply
        return reply["result"]

    def error(self, cmd: str, **args: Any) -> tuple[str, dict[str, Any]]:
        """(code, details) of a reply that must be an error."""
        reply = self.ask(cmd, **args)
        assert reply["ok"] is False, reply
        assert set(reply["error"]) == {"code", "message", "details"}
        return reply["error"]["code"], reply["error"]["details"]


class Core:
    def __init__(self, daemon: TestDaemon) -> None:
        self.daemon = daemon
        self.auth = Auth(daemon.store, daemon.cfg.state_dir)
        self.admin_token = self.auth.ensure_admin_token()
        self.dispatcher = Dispatcher(
            daemon.cfg, daemon.fleet, daemon.store, self.auth, REGISTRY, started_at=0.0
        )
        self.admin = Caller(self.dispatcher, self.admin_token)

    def tenant(self, name: str) -> Caller:
        token = self.admin.ok("token.create", tenant=name, label="test")["token"]
        return Caller(self.dispatcher, token)

    def online(self, caller: Caller, instance_id: str) -> None:
        caller.ok("instance.start", instance_id=instance_id)
        wait_until(lambda: caller.ok("instance.get", instance_id=instance_id)["state"] == "online")
