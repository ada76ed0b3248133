"""TOML tables into frozen dataclasses, checked: the generic half of config.py.

Each setting is checked against its annotation (numbers, integers, booleans, strings, lists of
strings, tables) and its field's "check" metadata (durations must be > 0, or >= 0); an unknown
key gets a "did you mean" hint. Errors are one-line `ConfigError`s naming "section.key".
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

from waz_actors.errors import ConfigError

# Field metadata "check": durations must be > 0 (or >= 0 where zero means "off").
POSITIVE = "positive"
NON_NEGATIVE = "non_negative"


def hint(key: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_type(name: str, value: Any, annotation: Any) -> Any:
    hints = annotation
    origin = typing.get_origin(hints)
    if hints is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if hints is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if hints is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true or false, got {value!r}")
        return value
    if hints is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name}: expected a list of strings, got {value!r}")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table, got {value!r}")
        return dict(value)
    raise ConfigError(f"{name}: unsupported setting type")  # pragma: no cover


def build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}"
        if key not in fields:
            raise ConfigError(f"{name}: unknown setting{hint(key, fields)}")
        value = check_type(name, value, hints[key])
        check = fields[key].metadata.get("check")
        if check == POSITIVE and value <= 0:
            raise ConfigError(f"{name}: must be greater than 0, got {value!r}")
        if check == NON_NEGATIVE and value < 0:
            raise ConfigError(f"{name}: must not be negative, got {value!r}")
        if hints[key] is int and value < 0:
            raise ConfigError(f"{name}: must not be negative, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)
