"""Argument checks shared by the policies: bad input raises ValueError and changes nothing."""

from __future__ import annotations

import math


def finite(name: str, value: float) -> float:
    if type(value) is float and math.isfinite(value):  # the common case, on every send
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def non_negative(name: str, value: float) -> float:
    value = finite(name, value)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return value


def positive(name: str, value: float) -> float:
    value = finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0, got {value!r}")
    return value


def fraction(name: str, value: float) -> float:
    value = finite(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return value


def count(name: str, value: int, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return value


def unit(rand_value: float) -> float:
    """Clamp a draw from an injected rand() into [0, 1] so a sloppy source cannot break bounds."""
    if not math.isfinite(rand_value):
        return 0.5
    return min(1.0, max(0.0, rand_value))


# Due times are compared with this slack: a caller that sleeps exactly the advertised delay and
# reads `now + delay` back may land one float rounding short of the due time, and must not be
# told "not yet, wait 1e-13 s".
TIME_EPSILON = 1e-9
