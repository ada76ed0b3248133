"""What a driver host may read and leave behind: a minimal environment, private files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.waiting import wait_until
from tests.whatsmeow.conftest import failed, make_driver
from waz_actors.drivers.whatsmeow import session_db_path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def lax_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the daemon's umask, inherited by its hosts: world-readable files
    yield
    os.umask(old)


def test_hosts_do_not_inherit_the_daemons_secrets(
    lax_umask: None, monkeypatch: pytest.MonkeyPatch, make_pool, make_proxy, workdir: Path
):
    monkeypatch.setenv("WAZ_TOKEN", "secret")
    monkeypatch.setenv("SOME_API_KEY", "secret too")
    pool = make_pool()
    drv, sink = make_driver(pool, "e1", make_proxy("refuse").url, workdir)
    host = pool.hosts[drv.host_id]
    assert wait_until(lambda: host.ready, timeout=15.0)
    raw = Path(f"/proc/{host.pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if item)
    assert "WAZ_TOKEN" not in env and "SOME_API_KEY" not in env
    assert env["WAZ_WHATSMEOW_OFFLINE"] == "1"  # the host reads this one
    drv.connect()  # the host still works with what it is given
    assert sink.wait(lambda evs: any(failed(e) for e in evs))
    # Only the daemon's user can reach the pool's socket.
    sock = Path(pool.endpoint.removeprefix("ipc://"))
    assert sock.exists() and mode(sock.parent) == 0o700


def test_session_files_are_private(lax_umask: None, make_pool, make_proxy, workdir: Path):
    state = workdir / "state"
    # A directory and a session left world-readable by an older version are made private too.
    old_db = session_db_path(state, "p0")
    old_db.parent.mkdir(parents=True, mode=0o755)
    old_db.parent.chmod(0o755)
    old_db.write_bytes(b"")
    old_db.chmod(0o644)
    pool = make_pool()
    proxy = make_proxy("refuse")
    for iid in ("p0", "p1"):
        drv, sink = make_driver(pool, iid, proxy.url, workdir)
        drv.connect()
        assert sink.wait(lambda evs: any(failed(e) for e in evs))
    wm = state / "whatsmeow"
    files = sorted(wm.iterdir())
    assert session_db_path(state, "p1") in files
    assert mode(wm) == 0o700
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
