"""`waz-actors http` and `[http]`: bad settings are one-line config errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from waz_actors.config import ConfigError, parse
from waz_actors.http.listen import parse_listen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "http.listen: not set"),
        (["--listen", "8000"], "--listen: expected host:port"),
        (["--listen", "127.0.0.1:99999"], "--listen: port must be 1 to 65535"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "waz_actors", "http", *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


def test_config_section() -> None:
    assert parse({"http": {"listen": "[::1]:8000"}}).http.listen == "[::1]:8000"
    assert parse_listen("[::1]:8000") == ("::1", 8000)
    with pytest.raises(ConfigError, match=r"http\.listen: expected host:port"):
        parse({"http": {"listen": "localhost"}})
    with pytest.raises(ConfigError, match=r"http\.create_driver: unknown driver"):
        parse({"http": {"create_driver": "nope"}})
    with pytest.raises(ConfigError, match=r"http\.lsiten: unknown setting"):
        parse({"http": {"lsiten": "x"}})
