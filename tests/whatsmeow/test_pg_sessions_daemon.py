"""A whatsmeow instance's session follows its lease: two clustered daemons on one PostgreSQL
(a scratch database: the store in schema `store`, sessions in their own schemas), a SIGTERM
hand-over from node A to node B, then instance.delete on B drops the session's schema. Sessions
dial a refusing SOCKS5 proxy on 127.0.0.1: nothing leaves the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.core.daemon_util import fast_config
from tests.pg import with_search_path
from tests.waiting import wait_until
from tests.whatsmeow.test_pg_sessions import query, whatsmeow_tables
from waz_actors.app.runtime import Daemon
from waz_actors.config import Config
from waz_actors.drivers import wm_pg
from waz_actors.errors import Exists


def node_config(tmp: Path, url: str, node: str, proxy: str) -> Config:
    return fast_config(
        tmp / node,
        store={"url": url},
        cluster={
            "enabled": True,
            "node_id": node,
            "lease_ttl": 1500.0,
            "renew_every": 200.0,
            "fence_margin": 500.0,
            "takeover_delay": 100.0,
            "acquire_rate": 100.0,
        },
        whatsmeow={"proxy": proxy, "sessions_per_host": 2, "heartbeat": 0.3},
    )


def session_files(state: Path) -> list[Path]:
    d = state / "whatsmeow"
    return list(d.iterdir()) if d.exists() else []


def test_the_session_follows_the_lease_and_delete_drops_it(
    db_url: str, tmp_path: Path, make_proxy, offline: None
) -> None:
    query(db_url, "CREATE SCHEMA store")
    url = with_search_path(db_url, "store")
    proxy = make_proxy("refuse").url
    a = Daemon(node_config(tmp_path, url, "a", proxy), with_control=False)
    b = Daemon(node_config(tmp_path, url, "b", proxy), with_control=False)
    a.start()
    try:
        assert a.fleet is not None
        a.fleet.create("mv", "whatsmeow", "t1", {}, desired="running")
        schema = wm_pg.schema_for("mv")
        wait_until(lambda: schema in whatsmeow_tables(db_url), timeout=60, what="A's session")
        assert set(whatsmeow_tables(db_url)) == {schema}  # the store's schema holds none
        assert session_files(tmp_path / "a" / "state") == []
        b.start()
        a.stop()  # SIGTERM: A closes the session and releases the lease; B takes it
        wait_until(lambda: "mv" in dict(b.children.items()), timeout=30, what="B runs mv")
        # Whatever B's host opens now is the shared schema: dropped, it comes back from B.
        query(db_url, f'DROP SCHEMA "{schema}" CASCADE')
        wait_until(lambda: schema in whatsmeow_tables(db_url), timeout=60, what="B's session")
        assert session_files(tmp_path / "b" / "state") == []
        assert b.fleet is not None
        b.fleet.delete("mv", 10)
        wait_until(lambda: whatsmeow_tables(db_url) == {}, timeout=30, what="schema dropped")
        (row,) = query(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", schema)
        assert row[0] == 0
        # a schema left behind (a delete that could not reach the database) refuses the id
        wm_pg.prepare(wm_pg.session_url(db_url, "mv"))
        with pytest.raises(Exists, match=f"session of a deleted instance.*{schema}"):
            b.fleet.create("mv", "whatsmeow", "t1", {})
    finally:
        a.stop()
        b.stop()
