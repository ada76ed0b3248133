"""Envelope codec: every malformed frame becomes a BadRequest naming the field, never a crash."""

from __future__ import annotations

import msgpack
import pytest

from waz_actors.control import protocol
from waz_actors.control.protocol import ProtocolError, Registry, decode_request, optional
from waz_actors.control.validate import ident
from waz_actors.errors import BadRequest, UnknownCommand


def req(**kw: object) -> bytes:
    base: dict[str, object] = {"v": 1, "id": 7, "cmd": "ping", "token": "waz_x"}
    base.update(kw)
    return msgpack.packb({k: v for k, v in base.items() if v is not ...}, use_bin_type=True)


def error_of(frame: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as e:
        decode_request(frame)
    return e.value


def test_valid_request_decodes() -> None:
    r = decode_request(req(args={"a": 1}))
    assert (r.v, r.id, r.cmd, r.token, r.args) == (1, 7, "ping", "waz_x", {"a": 1})


def test_args_default_to_empty_map() -> None:
    assert decode_request(req()).args == {}


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (b"", "frame"),
        (b"\xc1", "frame"),  # never-used msgpack byte
        (b"\x92\x01", "frame"),  # truncated array
        (msgpack.packb([1, 2, 3]), "frame"),
        (msgpack.packb("hello"), "frame"),
        (req() + b"\x00", "frame"),  # extra bytes
        (b"\x81\xa1v\xa2\xff\xfe", "frame"),  # {"v": <invalid utf-8 str>}
        (msgpack.packb({1: 2}), "frame"),  # non-string key
        (msgpack.packb(msgpack.ExtType(5, b"x")), "frame"),
    ],
)
def test_undecodable_frames_name_the_frame(frame: bytes, field: str) -> None:
    e = error_of(frame)
    assert e.code == "bad_request"
    assert e.details["field"] == field
    assert e.request_id is None


@pytest.mark.parametrize(
    ("kw", "field", "code"),
    [
        ({"v": ...}, "v", "bad_request"),
        ({"v": "1"}, "v", "bad_request"),
        ({"v": True}, "v", "bad_request"),
        ({"v": 2}, None, "unsupported_version"),
        ({"cmd": ...}, "cmd", "bad_request"),
        ({"cmd": 5}, "cmd", "bad_request"),
        ({"cmd": ""}, "cmd", "bad_request"),
        ({"token": 5}, "token", "bad_request"),
        ({"args": [1]}, "args", "bad_request"),
        ({"extra": 1}, "extra", "bad_request"),
    ],
)
def test_bad_fields_keep_the_id(kw: dict[str, object], field: str | None, code: str) -> None:
    e = error_of(req(**kw))
    assert e.code == code
    assert e.request_id == 7
    if field:
        assert e.details["field"] == field


@pytest.mark.parametrize("rid", [..., None, 1.5, True, [1], "x" * 200])
def test_bad_ids_answer_with_null_id(rid: object) -> None:
    e = error_of(req(id=rid))
    assert e.code == "bad_request" and e.details["field"] == "id" and e.request_id is None


def test_unsupported_version_lists_supported() -> None:
    assert error_of(req(v=9)).details == {"supported": [1]}


def test_deep_nesting_refused() -> None:
    deep: object = 1
    for _ in range(protocol.MAX_DEPTH + 1):
        deep = [deep]
    e = error_of(req(args={"x": deep}))
    assert "nesting" in e.message


def test_nesting_beyond_the_c_stack_refused() -> None:
    frame = b"\x91" * 100_000 + b"\x01"  # 100k nested arrays, 100 kB
    assert error_of(frame).code == "bad_request"


def test_huge_map_refused_before_allocation() -> None:
    # a map header claiming 2**32-1 entries in 5 bytes
    assert error_of(b"\xdf\xff\xff\xff\xff").code == "bad_request"
    big = msgpack.packb({"v": 1, "id": 1, "cmd": "x", "args": {str(i): i for i in range(2000)}})
    assert error_of(big).code == "bad_request"


def test_oversize_string_refused() -> None:
    frame = req(args={"t": "x" * 2000})
    with pytest.raises(ProtocolError):
        decode_request(frame, max_size=1000)


def test_replies_round_trip() -> None:
    ok = msgpack.unpackb(protocol.ok_reply("a", {"x": 1}))
    assert ok == {"v": 1, "id": "a", "ok": True, "result": {"x": 1}}
    err = msgpack.unpackb(protocol.error_reply(None, BadRequest("m", {"field": "f"})))
    assert err == {
        "v": 1,
        "id": None,
        "ok": False,
        "error": {"code": "bad_request", "message": "m", "details": {"field": "f"}},
    }


def test_registry_parses_and_rejects_args() -> None:
    reg = Registry()

    @reg.command("x.do", args={"instance_id": ident, "n": optional(int)})
    def do(ctx: object, instance_id: str, n: int = 0) -> dict[str, object]:
        return {"id": instance_id, "n": n}

    cmd = reg.get("x.do")
    assert cmd.parse_args({"instance_id": "a1"}) == {"instance_id": "a1"}
    assert cmd.parse_args({"instance_id": "a1", "n": None}) == {"instance_id": "a1"}
    with pytest.raises(BadRequest) as e:
        cmd.parse_args({})
    assert e.value.details == {"field": "instance_id"}
    with pytest.raises(BadRequest) as e:
        cmd.parse_args({"instance_id": "a/b"})
    assert e.value.details == {"field": "instance_id"}
    with pytest.raises(BadRequest) as e:
        cmd.parse_args({"instance_id": "a", "bogus": 1})
    assert e.value.details == {"field": "bogus"}
    with pytest.raises(UnknownCommand):
        reg.get("x.nope")
    with pytest.raises(ValueError, match="twice"):
        reg.command("x.do")(do)


def test_every_readonly_command_is_registered_readonly() -> None:
    from waz_actors.control.commands import REGISTRY

    for name in protocol.READONLY_COMMANDS:
        assert REGISTRY.get(name).readonly, name
    for name in REGISTRY.names():
        assert REGISTRY.get(name).readonly == (name in protocol.READONLY_COMMANDS), name


def test_empty_array_args_is_no_args() -> None:
    assert decode_request(req(args=[])).args == {}
    assert error_of(req(args=[1])).details == {"field": "args"}
