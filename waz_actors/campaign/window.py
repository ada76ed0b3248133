"""The sending window: "08:00" to "20:00" in a time zone. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_hhmm(value: str) -> int:
    """Minutes after midnight; ValueError for anything but HH:MM."""
    hh, sep, mm = value.partition(":")
    if not sep or not hh.isdigit() or not mm.isdigit() or len(mm) != 2:
        raise ValueError(f"{value!r}: expected HH:MM")
    h, m = int(hh), int(mm)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(f"{value!r}: expected HH:MM between 00:00 and 24:00")
    return h * 60 + m


def check_window(window: Mapping[str, str]) -> dict[str, str]:
    """The window as stored; ValueError naming what is wrong."""
    unknown = set(window) - {"from", "to", "tz"}
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
    out = {"from": str(window.get("from", "")), "to": str(window.get("to", ""))}
    parse_hhmm(out["from"])
    parse_hhmm(out["to"])
    tz = str(window.get("tz", "UTC"))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r}") from None
    out["tz"] = tz
    return out


def in_window(wall: float, window: Mapping[str, str] | None) -> bool:
    """Is the wall time inside the window? No window: always. A window whose `to` is before its
    `from` runs over midnight ("20:00" to "06:00")."""
    if not window:
        return True
    local = dt.datetime.fromtimestamp(wall, ZoneInfo(window.get("tz", "UTC")))
    now = local.hour * 60 + local.minute
    start, end = parse_hhmm(window["from"]), parse_hhmm(window["to"])
    if start == end:
        return True
    if start < end:
        return start <= now < end
    return now >= start or now < end


__all__ = ["check_window", "in_window", "parse_hhmm"]
