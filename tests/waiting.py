"""Waiting in tests: poll a condition that has no event to wait on, never sleep a fixed time.

One helper for the whole suite, so every wait fails the same way: an AssertionError that names
what was awaited and for how long, instead of a bare False that the caller may forget to check.
Where an event exists (a condition variable, a socket to read), tests wait on it instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    pred: Callable[[], T],
    timeout: float = 5.0,
    what: str | Callable[[], str] = "condition",
    every: float = 0.01,
) -> T:
    """Poll `pred` every `every` s until it returns something truthy, and return that.

    After `timeout` real seconds raise AssertionError naming `what`; a callable `what` is asked
    only then, so the message can show the state at the moment of failure. `pred` is asked once
    more after the deadline passes, so a condition met during the last sleep still counts.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            name = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {name}")
        time.sleep(every)
