"""The PHP snippet of docs/http.md (file_get_contents only) runs against a live gateway."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.control.conftest import online
from tests.http.conftest import Stack
from waz_actors.control.client import Client

DOC = Path(__file__).resolve().parents[2] / "docs" / "http.md"


def snippet() -> str:
    m = re.search(r"<!-- php-example -->\n```php\n(.*?)```", DOC.read_text(), re.S)
    assert m, "docs/http.md lost its PHP example"
    return m.group(1)


@pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed")
def test_php_snippet(stack: Stack, tmp_path: Path) -> None:
    token = stack.tenant_token("phpshop")
    with Client(stack.daemon.cfg.control_endpoint, token) as c:
        c.instance_create("sim", "php-1")
        online(c, "php-1")
    script = tmp_path / "example.php"
    script.write_text(snippet())
    env = {**os.environ, "WAZ_HTTP": stack.base, "WAZ_TOKEN": token, "WAZ_INSTANCE": "php-1"}
    proc = subprocess.run(["php", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"send: success \S+", out), out
    assert "same id: yes" in out
    assert re.search(r"health: (healthy|warning|critical)", out), out
    assert "bad input: bad_request on to" in out
