"""The settings each driver takes, declared where `instance.create` can check them.

An instance's `settings` map reaches its driver through `DriverContext.settings`; a key the
driver does not read would be ignored silently, so a typo (`endpoint` for `proxy`) would run
the session on the wrong network. `instance.create` therefore refuses an unknown key, a value
of the wrong type, and a setting reserved to the admin token, before anything is stored.

Light on purpose (no driver is imported): the control plane checks settings without loading
a driver. A driver that reads a setting declares it here, under its name in KNOWN_DRIVERS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from waz_actors.errors import BadRequest, Unauthorized

_PROXY = re.compile(r"^(socks5h?|https?)://[^\s/?#]{1,200}$")


def _proxy(value: str) -> str | None:
    if not _PROXY.match(value):
        return "expected a proxy URL: socks5://host:port, socks5h://, http:// or https://"
    return None


@dataclass(frozen=True, slots=True)
class Setting:
    kind: type
    help: str
    # Only the admin token may set it: e.g. a proxy makes the daemon dial the address given,
    # so a tenant could reach any internal host through it.
    admin_only: bool = False
    check: Callable[[Any], str | None] | None = None  # a further check: the problem, or None


DRIVER_SETTINGS: dict[str, dict[str, Setting]] = {
    "sim": {},
    "whatsmeow": {
        "proxy": Setting(
            str,
            "the proxy the session dials WhatsApp through (default: whatsmeow.proxy)",
            admin_only=True,
            check=_proxy,
        ),
    },
}


def check_settings(driver: str, settings: Mapping[str, Any], *, admin: bool) -> None:
    """BadRequest for an unknown or mistyped key, Unauthorized for an admin-only key set by a
    tenant token; `details.field` names the key as `settings.<key>`."""
    declared = DRIVER_SETTINGS.get(driver, {})
    for key, value in settings.items():
        field = f"settings.{key}"
        setting = declared.get(key)
        if setting is None:
            known = ", ".join(sorted(declared)) or "none"
            raise BadRequest(
                f"{field}: driver {driver!r} has no such setting (known: {known})",
                {"field": field},
            )
        if setting.admin_only and not admin:
            raise Unauthorized(f"{field}: only the admin token may set it", {"field": field})
        # bool is an int to Python, not to a client: True is no port number.
        if not isinstance(value, setting.kind) or (
            isinstance(value, bool) and setting.kind is not bool
        ):
            raise BadRequest(
                f"{field}: expected {setting.kind.__name__}, got {type(value).__name__}",
                {"field": field},
            )
        problem = setting.check(value) if setting.check is not None else None
        if problem is not None:
            raise BadRequest(f"{field}: {problem}", {"field": field})


__all__ = ["DRIVER_SETTINGS", "Setting", "check_settings"]
