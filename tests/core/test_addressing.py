"""One rule for ids, phone numbers, JIDs and content: protocol, CLI and drivers alike."""

from __future__ import annotations

import pytest

from waz_actors import addressing
from waz_actors.control import validate
from waz_actors.control.protocol import ArgError
from waz_actors.drivers.sim import checks as sim_checks


@pytest.mark.parametrize("good", ["shop-1", "a", "x" * 64, "t:1_2.3", "-a", "a.b"])
def test_ids_accepted(good: str) -> None:
    assert addressing.check_id(good) == good
    assert validate.ident(good) == good


@pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "a/b", "x" * 65, "é", "a b"])
def test_ids_refused_everywhere(bad: str) -> None:
    with pytest.raises(ValueError, match="not starting with a dot"):
        addressing.check_id(bad)
    with pytest.raises(ArgError):
        validate.ident(bad)


@pytest.mark.parametrize(
    ("raw", "digits"), [("+6281234567890", "6281234567890"), ("12345678", "12345678")]
)
def test_phone_numbers_accepted_by_protocol_and_sim_alike(raw: str, digits: str) -> None:
    assert addressing.check_phone(raw) == digits
    assert validate.phone(raw) == digits
    assert sim_checks.check_phone(raw) == digits


@pytest.mark.parametrize("bad", ["1234567", "1" * 16, "62 812", "+", "٣٣٣٣٣٣٣٣٣"])
def test_phone_numbers_refused_by_protocol_and_sim_alike(bad: str) -> None:
    with pytest.raises(ValueError):
        addressing.check_phone(bad)
    with pytest.raises(ArgError):
        validate.phone(bad)
    with pytest.raises(ValueError):
        sim_checks.check_phone(bad)


def test_recipients() -> None:
    assert addressing.check_recipient("+6281234567890") == "6281234567890"
    assert addressing.check_recipient("6281234567890@s.whatsapp.net").endswith("whatsapp.net")
    assert addressing.is_group_jid("120363025246125888@g.us")
    assert not addressing.is_group_jid("6281234567890@s.whatsapp.net")
    with pytest.raises(ValueError, match="JID"):
        addressing.check_recipient("someone@example.com")


def test_content_needs_text_or_media() -> None:
    addressing.check_content("hi", None)
    addressing.check_content(None, {"url": "http://x"})
    with pytest.raises(ValueError, match="text or media"):
        addressing.check_content(None, None)
