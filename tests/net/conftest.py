from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.media_server import MediaServer


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    s = MediaServer()
    yield s
    s.close()
