"""One control plane: a command for an instance whose lease another node holds is sent to that
node's control endpoint (ZeroMQ, the same wire contract, the caller's own token) and its answer
passed back unchanged. docs/design.md (Cluster) says why ZeroMQ and not LISTEN/NOTIFY.

Off loopback the hop uses CURVE: every node of a cluster shares one control keypair
(control.curve_secret_key_file) and lists its public key in control.curve_clients_dir, so a
node is both a trusted client and a known server of every other node.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from waz_actors.cluster.leases import LeaseStore
from waz_actors.config import Config
from waz_actors.control.client import Client, ClientError, Unreachable
from waz_actors.control.sockets import is_loopback
from waz_actors.errors import Busy, Internal, WazError
from waz_actors.types import ErrorCode

# Answered by whichever node is asked: they read the shared store or the cluster, or act on
# the caller's own connection (event streams), never on one instance's session.
LOCAL = frozenset({"ping", "daemon.status", "instance.list", "instance.create", "cluster.status"})
LOCAL_PREFIXES = ("token.", "events.", "cluster.", "sim.")


@dataclass(frozen=True, slots=True)
class Target:
    node_id: str
    endpoint: str


class Relayed(WazError):
    """The owner's error, passed on with its own code."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None) -> None:
        super().__init__(message, details)
        try:
            self.code = ErrorCode(code)
        except ValueError:
            self.code = ErrorCode.INTERNAL


def needs_owner(cmd: str, args: dict[str, Any]) -> str | None:
    """The instance whose owner must answer this command, or None (any node answers)."""
    if cmd in LOCAL or cmd.startswith(LOCAL_PREFIXES):
        return None
    iid = args.get("instance_id")
    return iid if isinstance(iid, str) else None


class Forwarder:
    def __init__(self, cfg: Config, node_id: str, ttl: float) -> None:
        self.cfg = cfg
        self.node_id = node_id
        self._lookup = LeaseStore(cfg.store.url, node_id, ttl)
        self._lock = threading.Lock()  # one lookup connection, shared by the control pool
        self._keys: tuple[bytes, bytes] | None = None

    def target(self, instance_id: str) -> Target | None:
        """The live owner of the instance when it is another node; None: answer here."""
        with self._lock:
            rows = self._lookup._all(
                "SELECT l.owner, n.endpoint FROM leases l JOIN nodes n ON n.node_id = l.owner "
                "WHERE l.instance_id = %s AND l.expires_at > now()",
                (instance_id,),
            )
        if not rows or rows[0][0] == self.node_id or not rows[0][1]:
            return None
        return Target(rows[0][0], rows[0][1])

    def send(self, target: Target, cmd: str, args: dict[str, Any], token: str | None) -> Any:
        """The owner's result; its error raised with the owner's code."""
        server_key, keypair = self._curve(target.endpoint)
        timeout = self.cfg.control.ask_timeout + 1.0  # the owner's own wait, and the hop
        with Client(
            target.endpoint,
            token,
            timeout,
            retries=0,
            curve_server_key=server_key,
            curve_keypair=keypair,
        ) as c:
            try:
                return c.call(cmd, args)
            except ClientError as e:
                raise Relayed(e.code, e.message, e.details) from None
            except Unreachable as e:
                raise Busy(
                    f"instance's node {target.node_id} did not answer; retry",
                    {"node_id": target.node_id, "reason": e.reason},
                ) from None

    def _curve(self, endpoint: str) -> tuple[bytes | None, tuple[bytes, bytes] | None]:
        if is_loopback(endpoint):
            return None, None
        ctl = self.cfg.control
        if not ctl.curve_secret_key_file:
            raise Internal(
                f"cannot forward to {endpoint} off loopback without CURVE: configure "
                "control.curve_secret_key_file (the cluster's shared control keypair)"
            )
        if self._keys is None:
            from waz_actors.control import keys

            self._keys = keys.read_secret(ctl.curve_secret_key_file)
        public, _ = self._keys
        return public, self._keys

    def close(self) -> None:
        self._lookup.close()
