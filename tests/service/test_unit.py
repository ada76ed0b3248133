"""The shipped unit passes `systemd-analyze verify` silently and rates <= 3.0 for exposure."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "waz-actors.service"
SHIPPED_BINARY = "/usr/local/bin/waz-actors"
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def _local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here.

    verify fails when the ExecStart binary is missing, and /usr/local/bin/waz-actors is only
    there on an installed host; everything else stays byte for byte as shipped.
    """
    exe = tmp_path / "waz-actors"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    text = UNIT.read_text()
    assert text.count(SHIPPED_BINARY) == 1
    unit = tmp_path / "waz-actors.service"
    unit.write_text(text.replace(SHIPPED_BINARY, str(exe)))
    return unit


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def test_verify_prints_nothing(tmp_path: Path) -> None:
    unit = _local_copy(tmp_path)
    r = _analyze("verify", str(unit), cwd=tmp_path)
    assert (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr
    assert r.returncode == 0


def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """Guards the test above: verify really reports a misspelt key as output."""
    unit = _local_copy(tmp_path)
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KilMode=mixed"))
    r = _analyze("verify", str(unit), cwd=tmp_path)
    assert "KilMode" in r.stdout + r.stderr


def test_security_exposure_at_most_3(tmp_path: Path) -> None:
    unit = _local_copy(tmp_path)
    r = _analyze("security", "--offline=yes", "--no-pager", str(unit), cwd=tmp_path)
    out = r.stdout + r.stderr
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
    assert m, out
    assert float(m.group(1)) <= 3.0, out


def test_shipped_unit_has_the_service_contract() -> None:
    keys: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    one = {k: v[-1] for k, v in keys.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["KillMode"] == "mixed"
    assert one["Restart"] == "on-failure"
    assert int(one["TasksMax"]) >= 16384
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["ExecStart"] == (
        f"{SHIPPED_BINARY} run --config /etc/waz-actors/waz-actors.toml"
        " --state-dir ${STATE_DIRECTORY} --runtime-dir ${RUNTIME_DIRECTORY}"
    )
    assert one["StateDirectory"] == one["RuntimeDirectory"] == "waz-actors"
    assert one["RuntimeDirectoryMode"] == "0750"
    assert one["User"] == one["Group"] == "waz-actors"
    assert one["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    # Stop timeout covers the drain (daemon.shutdown_timeout, 30 s by default) with margin.
    assert int(one["TimeoutStopSec"]) >= 60
