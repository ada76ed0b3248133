"""Hostile frames (issue 11 item 11): mixed bytes/str keys, nil keys, nested junk, huge ints and
wrong types are each answered bad_request, need no token, log nothing, and the daemon still
answers ping; errors a client can repeat are logged a bounded number of times."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from loguru import logger

from tests.control.conftest import Raw, TestDaemon
from tests.control.dispatch_util import Core
from waz_actors.control import dispatch
from waz_actors.control.auth import Auth
from waz_actors.control.dispatch import Dispatcher
from waz_actors.control.protocol import Registry
from waz_actors.policy.limits import LogLimiter


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def nested(depth: int) -> Any:
    obj: Any = "x"
    for _ in range(depth):
        obj = {"k": [obj]}
    return obj


PING = {"v": 1, "id": 1, "cmd": "ping"}
HOSTILE: dict[str, bytes] = {
    "mixed envelope keys": pack({b"zz": 1, "yy": 2, **PING}),
    "bytes envelope key": pack({b"token": "waz_x", **PING}),
    "mixed keys in args": pack({**PING, "args": {b"a": 1, "b": 2}}),
    "nil key": pack({None: 1, **PING}),
    "nil key in args": pack({**PING, "args": {None: "php object"}}),
    "int key": pack({1: 2, **PING}),
    "nested junk": pack({**PING, "args": {"x": nested(40)}}),
    "huge int token": pack({**PING, "token": 2**64 - 1}),
    "huge negative id": pack({"v": 1, "id": -(2**63) - 1 + 1, "cmd": 5}),
    "float id": pack({"v": 1, "id": 1.5, "cmd": "ping"}),
    "cmd is a map": pack({"v": 1, "id": 2, "cmd": {"a": 1}}),
    "args is a string": pack({**PING, "args": "all"}),
    "not a map": pack([1, 2, 3]),
    "truncated": pack({**PING, "args": {"a": "b" * 100}})[:-20],
    "bad utf-8": b"\x81\xa1v\xa2\xff\xfe",
    "ext type": b"\x81\xa1v\xd4\x01\x00",
}


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    hid = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    yield lines
    logger.remove(hid)


def test_hostile_frames_answered_bad_request_and_ping_still_works(
    daemon: TestDaemon, raw: Raw, log_lines: list[str]
) -> None:
    for name, frame in HOSTILE.items():
        for _ in range(20):  # repeated: nothing may pile up in the log
            reply = raw.ask(frame)
            assert reply is not None, f"{name}: no reply"
            assert reply["ok"] is False and reply["error"]["code"] == "bad_request", (name, reply)
            assert reply["error"]["details"]["field"], name
    nil = raw.ask(HOSTILE["nil key"])
    assert nil is not None and "nil key" in nil["error"]["message"]
    assert "php" in nil["error"]["message"].lower()
    mixed = raw.ask(HOSTILE["mixed envelope keys"])
    assert mixed is not None and "keys must be strings" in mixed["error"]["message"]
    token = (daemon.cfg.state_dir / "admin.token").read_text().strip()
    pong = raw.ask(pack({**PING, "token": token}))
    assert pong is not None and pong["ok"] is True
    assert len(log_lines) <= 10, log_lines


def test_repeated_internal_errors_are_logged_a_bounded_number_of_times(
    core: Core, log_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    monkeypatch.setattr(dispatch, "_log_limit", LogLimiter(dispatch.LOG_BURST, 60.0))
    monkeypatch.setattr(dispatch, "_log_clock", lambda: now[0])
    registry = Registry()

    @registry.command("boom", readonly=True)
    def boom(ctx: Any) -> None:
        raise RuntimeError("kaboom")

    auth = Auth(core.daemon.store, core.daemon.cfg.state_dir)
    token = auth.ensure_admin_token()
    d = Dispatcher(core.daemon.cfg, core.daemon.fleet, core.daemon.store, auth, registry)
    try:
        for i in range(200):
            reply = d({"v": 1, "id": i, "cmd": "boom", "token": token})
            assert reply["error"]["code"] == "internal"
        assert len(log_lines) == dispatch.LOG_BURST
        assert "kaboom" in log_lines[0]  # the traceback of the first ones is kept
        now[0] = 61.0
        d({"v": 1, "id": 0, "cmd": "boom", "token": token})
        assert len(log_lines) == dispatch.LOG_BURST + 1
        assert "195 similar errors not logged" in log_lines[-1]
    finally:
        d.close()
