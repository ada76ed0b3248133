"""instance.delete removes the whatsmeow session store and frees the host slot; a session file
left for an id refuses instance.create with `exists` (issue 11 item 2). Sessions dial a stalling
SOCKS5 proxy on 127.0.0.1: nothing leaves the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.core.daemon_util import state_of
from tests.waiting import wait_until
from tests.whatsmeow.conftest import make_driver
from tests.whatsmeow.test_daemon_whatsmeow import wm_config
from waz_actors.app.runtime import Daemon
from waz_actors.drivers import sessions
from waz_actors.drivers.whatsmeow import session_db_path
from waz_actors.errors import Exists


def test_delete_session_on_a_live_driver_frees_the_slot_and_the_file(
    workdir: Path, make_pool, make_proxy
) -> None:
    pool = make_pool()
    drv, _ = make_driver(pool, "ds1", make_proxy("stall").url, workdir)
    drv.connect()
    wait_until(lambda: pool.host_of("ds1") is not None, timeout=30, what="a host slot")
    wait_until(
        lambda: session_db_path(workdir / "state", "ds1").exists(), timeout=30, what="the db"
    )
    drv.delete_session()
    wait_until(lambda: pool.host_of("ds1") is None, timeout=30, what="the slot freed")
    # The host removes the file once its dial gives up (a stalled one may hold it): the
    # supervisor does not wait for that and removes the files itself, as here.
    sessions.remove_session("whatsmeow", workdir / "state", "ds1")
    assert not sessions.has_session("whatsmeow", workdir / "state", "ds1")


def test_a_driver_never_connected_gives_its_slot_back_on_release(
    workdir: Path, make_pool, make_proxy
) -> None:
    """Review finding 8: a driver built for a connect its switch refused takes a host slot
    when built; `release` gives it back and leaves the session's files alone."""
    pool = make_pool()
    drv, _ = make_driver(pool, "ds3", make_proxy("stall").url, workdir)
    assert pool.host_of("ds3") is not None  # built: the slot is taken already
    drv.release()
    wait_until(lambda: pool.host_of("ds3") is None, timeout=30, what="the slot freed")


def test_delete_session_frees_the_slot_only_once_the_files_are_gone(
    workdir: Path, make_pool, make_proxy
) -> None:
    """The close reaches the host (it used to be dropped: detach came first), and the slot is
    held until the session is closed or its host killed; then the pool removes the files, which
    a session stuck in its dial may have written after anyone else removed them."""
    pool = make_pool()
    drv, _ = make_driver(pool, "ds2", make_proxy("stall").url, workdir)
    drv.connect()
    wait_until(
        lambda: session_db_path(workdir / "state", "ds2").exists(), timeout=30, what="the db"
    )
    drv.delete_session()
    wait_until(lambda: pool.host_of("ds2") is None, timeout=30, what="the slot freed")
    assert not sessions.has_session("whatsmeow", workdir / "state", "ds2")


def test_daemon_delete_removes_the_session_and_create_refuses_a_leftover(
    workdir: Path, make_proxy, offline
) -> None:
    d = Daemon(wm_config(workdir, make_proxy("stall").url), with_control=False)
    d.start()
    try:
        state = d.cfg.state_dir
        d.fleet.create("wd1", "whatsmeow", "t1", {}, desired="running")
        wait_until(lambda: state_of(d, "wd1") == "connecting", timeout=30, what="connecting")
        wait_until(
            lambda: sessions.has_session("whatsmeow", state, "wd1"), timeout=30, what="the db"
        )
        assert d.host_pool is not None and d.host_pool.host_of("wd1") is not None
        d.fleet.delete("wd1", 10)
        # Removed by the supervisor once the actor stopped, and by the host when it has closed
        # the session (a late SQLite sidecar of a session still closing goes then).
        wait_until(lambda: not sessions.has_session("whatsmeow", state, "wd1"), timeout=30)
        wait_until(lambda: d.host_pool.host_of("wd1") is None, timeout=30, what="the slot freed")
        # the same id again starts with no login
        d.fleet.create("wd1", "whatsmeow", "t2", {})
        d.fleet.delete("wd1", 10)
        # a session file left behind (by an older daemon, a copied state dir): refused
        db = session_db_path(state, "wd1")
        db.parent.mkdir(parents=True, exist_ok=True)
        db.write_bytes(b"old login")
        with pytest.raises(Exists, match="session file of a deleted instance") as e:
            d.fleet.create("wd1", "whatsmeow", "t2", {})
        assert e.value.details["field"] == "instance_id"
        assert str(db) in e.value.details["session"]
        assert d.store.get_instance("wd1") is None  # nothing created
        db.unlink()
        assert d.fleet.create("wd1", "whatsmeow", "t2", {}) == "wd1"
    finally:
        d.stop()
