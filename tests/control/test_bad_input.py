"""Each class of bad input from issue 3 gets a clear error (or a counted drop), changes nothing,
and the daemon keeps serving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from tests.control.conftest import Raw, TestDaemon, request
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client


def token_of(d: TestDaemon) -> str:
    return read_admin_token(d.cfg.state_dir)


def assert_error(reply: dict[str, Any] | None, code: str, field: str | None = None) -> None:
    assert reply is not None, "no reply"
    assert reply["v"] == 1 and reply["ok"] is False
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    if field is not None:
        assert reply["error"]["details"]["field"] == field, reply


def test_malformed_frames_get_bad_request(daemon: TestDaemon, raw: Raw) -> None:
    tok = token_of(daemon)
    cases: list[tuple[list[bytes], str, str | None, Any]] = [
        ([b"\xc1\xc1"], "bad_request", "frame", None),  # not msgpack
        ([msgpack.packb([1, 2])], "bad_request", "frame", None),  # not a map
        ([b""], "bad_request", "frame", None),  # empty frame
        ([request("ping", tok), b"x"], "bad_request", "frame", None),  # extra frame
        ([msgpack.packb({"v": 1, "cmd": "ping"})], "bad_request", "id", None),
        ([msgpack.packb({"v": 1, "id": 5, "token": tok})], "bad_request", "cmd", 5),
        ([msgpack.packb({"id": 5, "cmd": "ping", "token": tok})], "bad_request", "v", 5),
        ([msgpack.packb({"v": "1", "id": 5, "cmd": "ping"})], "bad_request", "v", 5),
        ([msgpack.packb({"v": 2, "id": "x", "cmd": "ping"})], "unsupported_version", None, "x"),
        ([request("no.such", tok, rid=9)], "unknown_command", "cmd", 9),
        ([request("ping", None, rid=3)], "unauthorized", "token", 3),
        ([request("instance.get", tok, {})], "bad_request", "instance_id", 1),
        ([request("instance.get", tok, {"instance_id": 7})], "bad_request", "instance_id", 1),
        ([request("ping", tok, {"surprise": 1})], "bad_request", "surprise", 1),
        (
            [msgpack.packb({"v": 1, "id": 1, "cmd": "ping", "token": tok, "args": 3})],
            "bad_request",
            "args",
            1,
        ),
        ([b"\x81\xa3cmd\xa4\xff\xfe\xfd\xfc"], "bad_request", "frame", None),  # non-UTF-8 str
    ]
    for frames, code, field, rid in cases:
        reply = raw.ask(*frames)
        assert_error(reply, code, field)
        assert reply["id"] == rid, frames
    assert daemon.control.stats()["errors"] >= len(cases)
    assert raw.ask(request("ping", tok, rid="ok"))["result"]["pong"] is True


def test_deep_and_huge_structures(daemon: TestDaemon, raw: Raw) -> None:
    tok = token_of(daemon)
    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    assert_error(raw.ask(request("ping", tok, {"x": deep})), "bad_request", "frame")
    assert_error(raw.ask(b"\x91" * 200_000 + b"\xc0"), "bad_request", "frame")  # C-stack deep
    assert_error(raw.ask(b"\xdf\xff\xff\xff\xff"), "bad_request", "frame")  # 4G-entry map
    huge = msgpack.packb({"v": 1, "id": 1, "cmd": "ping", "args": {str(i): 0 for i in range(5000)}})
    assert_error(raw.ask(huge), "bad_request", "frame")
    assert raw.ask(request("ping", tok))["ok"] is True


def test_req_socket_with_delimiter_works(daemon: TestDaemon) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.cfg.control_endpoint)
    sock.send(request("ping", token_of(daemon), rid=42))
    assert sock.poll(5000)
    reply = msgpack.unpackb(sock.recv(), raw=False)
    assert reply["id"] == 42 and reply["result"]["pong"]
    sock.send(b"garbage")
    assert sock.poll(5000)
    assert_error(msgpack.unpackb(sock.recv(), raw=False), "bad_request", "frame")
    sock.close()


def test_oversize_frame_drops_the_connection_silently(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    d = start_daemon(control={"max_message_size": 4096})
    tok = token_of(d)
    big = Raw(d.cfg.control_endpoint)
    big.send(request("ping", tok, {"pad": "x" * 10_000}))
    # ZMQ_MAXMSGSIZE: libzmq closes that peer's connection; no reply can be sent.
    assert big.recv(timeout=0.5) is None
    with Client(d.cfg.control_endpoint, tok) as other:
        assert other.ping()["pong"]
    # the DEALER reconnects by itself and is served again
    assert big.ask(request("ping", tok, rid=2))["ok"] is True
    big.close()


def test_flood_from_one_client_does_not_starve_others(daemon: TestDaemon) -> None:
    tok = token_of(daemon)
    flood = Raw(daemon.cfg.control_endpoint)
    n = 5000
    for i in range(n):
        flood.send(request("ping", tok, rid=i))
    with Client(daemon.cfg.control_endpoint, tok, timeout=5) as calm:
        for _ in range(20):
            assert calm.ping()["pong"]
    got = 0
    while got < n and flood.recv(timeout=5) is not None:
        got += 1
    assert got == n
    flood.close()


def test_inflight_bound_answers_busy_and_queues_nothing_extra(
    start_daemon: Callable[..., TestDaemon],
) -> None:
    d = start_daemon(control={"max_inflight": 1}, queue={"max_size": 1000})
    tok = token_of(d)
    with Client(d.cfg.control_endpoint, tok) as c:
        c.instance_create("sim", "b1")
    sender = Raw(d.cfg.control_endpoint)
    n = 300
    for i in range(n):
        sender.send(
            request(
                "message.send",
                tok,
                {"instance_id": "b1", "to": "5511999999999", "text": f"m{i}"},
                rid=i,
            )
        )
    replies = [sender.recv() for _ in range(n)]
    assert all(r is not None for r in replies)
    busy = [r for r in replies if not r["ok"] and r["error"]["code"] == "busy"]
    queued = [r for r in replies if r["ok"]]
    assert len(busy) + len(queued) == n
    assert busy and queued
    stored = d.store.list_messages("b1", limit=1000)
    assert sorted(m.message_id for m in stored) == sorted(r["result"]["message_id"] for r in queued)
    assert d.control.stats()["busy"] == len(busy)
    sender.close()
