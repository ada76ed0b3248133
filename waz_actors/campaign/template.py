"""Campaign texts: `{var}` from the recipient's vars and spintax `{a|b|c}`.

Pure functions. A `{name}` without `|` is a variable; `{a|b|c}` picks one option, seeded per
recipient (campaign id + number), so a re-feed after a restart renders exactly the same text
while different recipients get different texts (messages are not all identical). Options may
hold variables and nest (`{Hi|Hello} {name}`, `{Hi {name}|{Hello|Hey}}`). A literal brace cannot
be written (there is no escape): a WhatsApp text rarely needs one, and a variable's value may hold
any braces (it is never read as a template).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping

# An innermost brace group: no braces inside. Rendering replaces these until none is left, so
# nested spintax ({a|{b|c}}) resolves from the inside out.
_GROUP = re.compile(r"\{([^{}]*)\}")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_OPEN, _CLOSE = "\x00", "\x01"  # stand-ins for a value's braces while rendering


class TemplateError(ValueError):
    """A template that cannot be rendered for a recipient (a missing var, a bad group)."""


def _unescape(text: str) -> str:
    return text.replace(_OPEN, "{").replace(_CLOSE, "}")


def variables(text: str) -> set[str]:
    """The variable names a template uses (in any spintax option)."""
    return {m.strip() for m in re.findall(r"\{([^{}|]*)\}", text) if _VAR.match(m.strip())}


def seed_of(campaign_id: str, number: str) -> int:
    digest = hashlib.sha256(f"{campaign_id}:{number}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def render(text: str, vars: Mapping[str, str], seed: int) -> str:
    """The text for one recipient. Raises TemplateError naming a missing variable."""
    rng: random.Random | None = None  # made on the first choice: seeding costs more than a var
    out = text
    while True:
        m = _GROUP.search(out)
        if m is None:
            break
        inner = m.group(1)
        if "|" in inner:
            options = inner.split("|")
            if rng is None:
                rng = random.Random(seed)
            choice = options[rng.randrange(len(options))]
        else:
            name = inner.strip()
            if not _VAR.match(name):
                raise TemplateError(f"{{{inner}}} is neither a variable nor a choice")
            if name not in vars:
                raise TemplateError(f"missing variable {name!r}")
            # Values are escaped too: a customer's name with braces is not a template.
            choice = str(vars[name]).replace("{", _OPEN).replace("}", _CLOSE)
        out = out[: m.start()] + choice + out[m.end() :]
    if "{" in out or "}" in out:
        raise TemplateError("unbalanced braces")
    return _unescape(out)


def check(text: str, vars: Mapping[str, str]) -> None:
    """Raise TemplateError if `text` cannot be rendered with `vars` (any spintax choice)."""
    missing = sorted(variables(text) - set(vars))
    if missing:
        raise TemplateError(f"missing variable {missing[0]!r}")
    render(text, vars, 0)


__all__ = ["TemplateError", "check", "render", "seed_of", "variables"]
