"""Argument converters accept what docs/protocol.md allows and name what they refuse."""

from __future__ import annotations

import math

import pytest

from waz_actors.control import validate as v
from waz_actors.control.protocol import ArgError
from waz_actors.errors import TooLarge


@pytest.mark.parametrize("good", ["a", "A-b_c.d:e", "x" * 64, "3EB0ABCDEF"])
def test_ident_accepts(good: str) -> None:
    assert v.ident(good) == good


@pytest.mark.parametrize("bad", ["", "x" * 65, "a b", "a/b", "é", 5, None, b"ab"])
def test_ident_refuses(bad: object) -> None:
    with pytest.raises(ArgError):
        v.ident(bad)


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("5511999999999", "5511999999999"),
        ("+5511999999999", "5511999999999"),
        ("12345678", "12345678"),
        ("5511999999999@s.whatsapp.net", "5511999999999@s.whatsapp.net"),
        ("120363025555555555@g.us", "120363025555555555@g.us"),
        ("5511999999999-1610000000@g.us", "5511999999999-1610000000@g.us"),
    ],
)
def test_recipient_accepts(raw: str, out: str) -> None:
    assert v.recipient(raw) == out


@pytest.mark.parametrize(
    "bad",
    ["1234567", "1" * 16, "55 11 9999", "abc@s.whatsapp.net", "55119@example.com", "", 5511999999],
)
def test_recipient_refuses(bad: object) -> None:
    with pytest.raises(ArgError):
        v.recipient(bad)


def test_text_limits() -> None:
    conv = v.text_of(5)
    assert conv("hello") == "hello"
    with pytest.raises(ArgError) as e:
        conv("hello!")
    assert e.value.error is TooLarge
    with pytest.raises(ArgError):
        conv("")
    with pytest.raises(ArgError):
        conv(b"hi")


def test_media() -> None:
    m = {"url": "https://x.test/a.jpg", "caption": "hi", "mime": "image/jpeg"}
    assert v.media(m) == m
    voice = {"url": "https://x.test/v.ogg", "ptt": True}
    assert v.media(voice) == voice
    for bad in (
        {"url": "ftp://x.test/a"},
        {"url": "file:///etc/passwd"},
        {"url": "javascript:alert(1)"},
        {"url": "https://"},
        {"caption": "no url"},
        {"url": "https://x.test/a", "evil": 1},
        {"url": "https://x.test/a", "caption": 5},
        {"url": "https://x.test/a", "ptt": "yes"},
        {"url": "https://x.test/a", "ptt": 1},
        "https://x.test/a",
    ):
        with pytest.raises(ArgError):
            v.media(bad)


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, "5", True, 10**9])
def test_ttl_refuses(bad: object) -> None:
    with pytest.raises(ArgError):
        v.ttl(bad)


def test_ttl_and_limit_accept() -> None:
    assert v.ttl(30) == 30.0
    assert v.limit(1) == 1 and v.limit(1000) == 1000
    for bad in (0, 1001, 1.5, True, "10"):
        with pytest.raises(ArgError):
            v.limit(bad)


def test_enums() -> None:
    assert v.instance_state("online") == "online"
    assert v.message_status("failed") == "failed"
    assert v.driver("sim") == "sim"
    for conv in (v.instance_state, v.message_status, v.driver):
        with pytest.raises(ArgError):
            conv("nope")


def test_maps_and_lists() -> None:
    assert v.settings({"a": 1}) == {"a": 1}
    with pytest.raises(ArgError):
        v.settings({"": 1})
    with pytest.raises(ArgError):
        v.settings({str(i): i for i in range(100)})
    assert v.id_list(["a", "b"]) == ["a", "b"]
    with pytest.raises(ArgError):
        v.id_list(["a", "b c"])
    with pytest.raises(ArgError) as e:
        v.id_list(["a"] * 1001)
    assert e.value.error is TooLarge


def test_phone_and_token_ref() -> None:
    assert v.phone("+5511999999999") == "5511999999999"
    with pytest.raises(ArgError):
        v.phone("5511999999999@s.whatsapp.net")
    assert v.token_ref("abcdef12") == "abcdef12"
    for bad in ("abc", "ABCDEF12", "zzzzzzzz"):
        with pytest.raises(ArgError):
            v.token_ref(bad)
