from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.control.conftest import TestDaemon, make_config
from tests.control.dispatch_util import Core
from tests.webhooks.receiver import Receiver

FAST = {"allow_private_targets": True, "poll_interval": 0.05}


def hooked_core(tmp_path: Path, **webhooks: Any) -> Core:
    cfg = make_config(
        tmp_path / "state",
        tmp_path / "run",
        webhooks={**FAST, **webhooks},
        connection={"keepalive": 200.0},
    )
    d = TestDaemon(cfg, with_control=False)
    d.start()
    return Core(d)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[Core]:
    """A Dispatcher over a real daemon whose webhooks may reach 127.0.0.1."""
    c = hooked_core(tmp_path)
    yield c
    c.dispatcher.close()
    c.daemon.stop(timeout=5)
