"""Campaign templates and windows: pure functions."""

from __future__ import annotations

import datetime as dt

import pytest

from waz_actors.campaign.template import TemplateError, check, render, seed_of, variables
from waz_actors.campaign.window import check_window, in_window


def test_vars_and_spintax() -> None:
    assert render("Halo {name}", {"name": "Budi"}, 1) == "Halo Budi"
    assert render("{Hi|Hi}", {}, 7) == "Hi"
    texts = {render("{a|b|c} {d|e}", {}, seed_of("C1", f"62{i}")) for i in range(40)}
    assert len(texts) > 3  # messages are not all identical
    assert variables("{Hi {name}|Yo} {x} {a|b}") == {"name", "x"}
    assert render("{Hi {name}|{Hey|Yo} {name}}", {"name": "A"}, 3) in {"Hi A", "Hey A", "Yo A"}


def test_the_same_recipient_always_gets_the_same_text() -> None:
    seed = seed_of("C1", "6281234567891")
    first = render("{a|b|c|d|e|f} {g|h|i}", {}, seed)
    assert all(render("{a|b|c|d|e|f} {g|h|i}", {}, seed) == first for _ in range(20))


def test_a_value_with_braces_is_not_a_template() -> None:
    assert render("Hi {name}", {"name": "{x|y}"}, 1) == "Hi {x|y}"


@pytest.mark.parametrize(
    ("text", "vars", "error"),
    [
        ("Hi {name}", {}, "missing variable 'name'"),
        ("{Hi|{name}}", {}, "missing variable 'name'"),
        ("Hi {", {}, "unbalanced"),
        ("Hi {a b}", {}, "neither a variable"),
    ],
)
def test_errors(text: str, vars: dict[str, str], error: str) -> None:
    with pytest.raises(TemplateError, match=error):
        check(text, vars)


def test_window() -> None:
    noon = dt.datetime(2026, 1, 5, 5, 0, tzinfo=dt.UTC).timestamp()  # 12:00 in Jakarta
    day = {"from": "08:00", "to": "20:00", "tz": "Asia/Jakarta"}
    night = {"from": "20:00", "to": "06:00", "tz": "Asia/Jakarta"}
    assert in_window(noon, day) and not in_window(noon, night)
    assert in_window(noon + 9 * 3600, night)  # 21:00 local
    assert in_window(noon, None)
    assert check_window({"from": "08:00", "to": "20:00"})["tz"] == "UTC"
    for bad in (
        {"from": "8", "to": "20:00"},
        {"from": "08:00", "to": "25:00"},
        {"from": "08:00", "to": "20:00", "tz": "Mars/Base"},
        {"x": 1},
    ):
        with pytest.raises(ValueError):
            check_window(bad)
