"""The control server's sockets: ROUTERs for requests, the PUB for events, the wake-up pair.

Binding happens here, with the checks that must fail at start-up rather than later: an
endpoint off loopback needs CURVE, ipc files get mode 0660 (the daemon's group), and CURVE
keys are read through waz_actors.control.keys like the CLI reads them.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq

from waz_actors.config import Config
from waz_actors.control import keys
from waz_actors.errors import ConfigError


def is_loopback(endpoint: str) -> bool:
    """True for ipc/inproc and tcp endpoints bound to a loopback address."""
    if not endpoint.startswith("tcp://"):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a hostname: may be reachable from outside


def ipc_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("ipc://") :]) if endpoint.startswith("ipc://") else None


def plan(config: Config) -> tuple[list[str], list[str]]:
    """(every request endpoint, those that use CURVE); ConfigError for one exposed without it."""
    ctl = config.control
    curve = bool(ctl.curve_secret_key_file and ctl.curve_clients_dir)
    every = [config.control_endpoint, *ctl.tcp_endpoints]
    exposed = [e for e in every if not is_loopback(e)]
    if exposed and not curve:
        raise ConfigError(
            f"control.tcp_endpoints: {exposed[0]} is not on loopback; configure "
            "control.curve_secret_key_file and control.curve_clients_dir to use CURVE"
        )
    # The same rule for the PUB socket: off loopback it uses CURVE (Sockets binds it with the
    # server key), else anyone who reaches the port reads every tenant's events.
    if not is_loopback(config.events_endpoint) and not curve:
        raise ConfigError(
            f"control.events_endpoint: {config.events_endpoint} is not on loopback; configure "
            "control.curve_secret_key_file and control.curve_clients_dir to use CURVE"
        )
    # With CURVE configured every tcp endpoint uses it (one socket, server key pair);
    # ipc stays plain: its file mode already limits it to the daemon's group.
    return every, [e for e in every if curve and e.startswith("tcp://")]


class Sockets:
    """Every socket of one server and their context; only the loop thread uses them."""

    def __init__(self, config: Config, wake_endpoint: str) -> None:
        self.config = config
        self.wake_endpoint = wake_endpoint
        self.endpoints: list[str] = []  # the request endpoints bound so far
        self.ctx: zmq.Context[Any] | None = None
        self.routers: list[zmq.Socket[Any]] = []
        self.pub: zmq.Socket[Any] | None = None
        self.wake_pull: zmq.Socket[Any] | None = None
        self.wake_push: zmq.Socket[Any] | None = None
        self._authenticator: Any = None  # zmq.auth.thread.ThreadAuthenticator (untyped)

    def open(self) -> None:
        """Bind everything, or raise (ConfigError, ZMQError) with nothing left bound."""
        every, public = plan(self.config)
        self.ctx = zmq.Context()
        try:
            self._bind_all(every, public)
        except Exception:
            self.close()
            raise

    def _bind_all(self, endpoints: list[str], public: list[str]) -> None:
        assert self.ctx is not None
        local = self._router()
        self.routers.append(local)
        for ep in endpoints:
            if ep not in public:
                self._bind(local, ep)
        if public:
            secure = self._router()
            self.routers.append(secure)  # listed first: a failed setup must still close it
            self._setup_curve(secure)
            for ep in public:
                self._bind(secure, ep)
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.setsockopt(zmq.SNDHWM, 10_000)
        if not is_loopback(self.config.events_endpoint):
            self._setup_curve(self.pub)  # plan() made sure CURVE is configured
        self._bind(self.pub, self.config.events_endpoint)
        self.wake_pull = self.ctx.socket(zmq.PULL)
        self.wake_pull.bind(self.wake_endpoint)
        self.wake_push = self.ctx.socket(zmq.PUSH)
        self.wake_push.setsockopt(zmq.LINGER, 0)
        self.wake_push.connect(self.wake_endpoint)

    def _router(self) -> zmq.Socket[Any]:
        assert self.ctx is not None
        sock: zmq.Socket[Any] = self.ctx.socket(zmq.ROUTER)
        # Oversize frames make libzmq drop that peer's connection without a reply; that is the
        # only defence that works before the bytes are in memory.
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.control.max_message_size)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.RCVHWM, 10_000)
        sock.setsockopt(zmq.SNDHWM, 100_000)
        return sock

    def _bind(self, sock: zmq.Socket[Any], endpoint: str) -> None:
        path = ipc_path(endpoint)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        sock.bind(endpoint)
        if path is not None:
            os.chmod(path, 0o660)  # the daemon's group may talk to it, nobody else
        if sock.type == zmq.ROUTER:
            self.endpoints.append(endpoint)

    def _setup_curve(self, sock: zmq.Socket[Any]) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        ctl = self.config.control
        try:
            public, secret = keys.read_secret(ctl.curve_secret_key_file)
        except keys.KeyFileError as e:
            raise ConfigError(f"control.curve_secret_key_file: {e}") from None
        if not Path(ctl.curve_clients_dir).is_dir():
            raise ConfigError(
                f"control.curve_clients_dir: {ctl.curve_clients_dir} is not a directory"
            )
        if self._authenticator is None:  # one for the ROUTER and the PUB
            self._authenticator = ThreadAuthenticator(self.ctx)
            self._authenticator.start()
            self._authenticator.configure_curve(domain="*", location=ctl.curve_clients_dir)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    def close(self) -> None:
        """Close every socket, stop the authenticator, remove the ipc files. Idempotent.

        The caller makes sure no other thread still sends on `wake_push`."""
        for sock in [*self.routers, self.pub, self.wake_pull, self.wake_push]:
            if sock is not None:
                sock.close()
        self.routers = []
        self.pub = self.wake_pull = self.wake_push = None
        if self._authenticator is not None:
            self._authenticator.stop()
            self._authenticator = None
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None
        for ep in [*self.endpoints, self.config.events_endpoint]:
            path = ipc_path(ep)
            if path is not None:
                try:
                    path.unlink()
                except OSError:
                    pass
