"""CURVE key files are read by one click-free module, the daemon's and the CLI's reader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import zmq.auth

from waz_actors.control import keys


def test_reads_what_zmq_writes(tmp_path: Path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(tmp_path, "server")
    assert keys.read_secret(secret_file) == zmq.auth.load_certificate(secret_file)
    assert keys.read_public(public_file) == zmq.auth.load_certificate(public_file)[0]
    with pytest.raises(keys.KeyFileError, match="no secret key"):
        keys.read_secret(public_file)
    with pytest.raises(keys.KeyFileError, match="cannot read key file"):
        keys.read_public(tmp_path / "missing.key")


def test_the_key_module_needs_neither_click_nor_the_cli() -> None:
    code = (
        "import sys, waz_actors.control.keys; "
        "bad = [m for m in ('click', 'waz_actors.cli.common') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
