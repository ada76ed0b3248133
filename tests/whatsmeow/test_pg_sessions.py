"""whatsmeow sessions in the cluster's PostgreSQL (drivers/wm_pg.py): a schema per instance,
created by the real library's own migration, the same store seen from another node, dropped on
delete. Real PostgreSQL (a scratch database per test), real driver hosts, sessions dialling a
refusing SOCKS5 proxy on 127.0.0.1: nothing leaves the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("neonize")

from tests.waiting import wait_until
from tests.whatsmeow.conftest import Sink, failed
from waz_actors.config import parse
from waz_actors.drivers import sessions, wm_pg
from waz_actors.drivers.base import DriverContext
from waz_actors.drivers.host.client import HostPool
from waz_actors.drivers.whatsmeow import WhatsmeowDriver, session_location

ROOT = Path(__file__).resolve().parents[2]
DEVICE_JID = "5511999990001.0:7@s.whatsapp.net"


def query(url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.encode(), args)
        return cur.fetchall() if cur.description else []


def whatsmeow_tables(url: str) -> dict[str, int]:
    rows = query(
        url,
        "SELECT table_schema, count(*) FROM information_schema.tables"
        " WHERE table_name LIKE 'whatsmeow%%' GROUP BY 1",
    )
    return {str(s): int(str(n)) for s, n in rows}


def store_backends(url: str) -> list[tuple[object, ...]]:
    """Connections of session stores to the database of `url` (application_name waz_wm_...)."""
    name = urlsplit(url).path.lstrip("/")
    return query(
        url,
        "SELECT application_name FROM pg_stat_activity"
        " WHERE datname = %s AND application_name LIKE 'waz_wm_%%'",
        name,
    )


def node(workdir: Path, name: str) -> tuple[HostPool, Path]:
    """A node's driver-host pool with its own runtime and state directories."""
    cfg = parse({"whatsmeow": {"sessions_per_host": 2, "heartbeat": 0.2, "heartbeat_misses": 5}})
    pool = HostPool(cfg, workdir / name / "run", workdir / name / "state")
    pool.start()
    return pool, workdir / name / "state"


def driver(pool: HostPool, state: Path, iid: str, proxy: str, url: str) -> tuple[Sink, Any]:
    sink = Sink()
    ctx = DriverContext(
        instance_id=iid,
        settings={"proxy": proxy},
        state_dir=str(state),
        sink=sink,
        session_url=url,
    )
    return sink, WhatsmeowDriver(ctx, pool)


def connect_fails(drv: WhatsmeowDriver, sink: Sink) -> str:
    drv.connect()
    assert sink.wait(lambda evs: any(failed(e) for e in evs), timeout=60)
    return next(e.reason for e in sink.events if failed(e))  # type: ignore[attr-defined]


def probe(location: str, proxy: str, me: bool = False) -> dict[str, Any]:
    """The real library in its own process (a nil dereference must not take pytest down)."""
    args = [sys.executable, "-m", "tests.whatsmeow.wm_pg_probe", location, proxy]
    out = subprocess.run(
        args + (["--me"] if me else []), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, out.stderr[-2000:]
    return dict(json.loads(line[len("PROBE ") :]))


def insert_device(url: str, schema: str) -> None:
    """A paired device as whatsmeow stores it (keys of the right lengths, not real ones)."""
    query(
        url,
        f'INSERT INTO "{schema}".whatsmeow_device (jid, registration_id, noise_key,'
        " identity_key, signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key,"
        " adv_details, adv_account_sig, adv_account_sig_key, adv_device_sig, push_name)"
        " VALUES (%s, 1234, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s, 'paired on node A')"
        " RETURNING jid",
        DEVICE_JID,
        *(bytes([i]) * n for i, n in ((1, 32), (2, 32), (3, 32), (4, 64), (5, 32))),
        b"",
        *(bytes([i]) * n for i, n in ((6, 64), (7, 32), (8, 64))),
    )


# -- the library ------------------------------------------------------------------------------


def test_the_library_creates_its_tables_in_each_instance_schema_and_nowhere_else(
    db_url: str, make_proxy, workdir: Path, offline: None
) -> None:
    proxy = make_proxy("refuse").url
    pool, state = node(workdir, "a")
    try:
        reasons = {}
        for iid in ("wa1", "wa2", "wa1", "wa2"):  # twice each: a reconnect opens it again
            sink, drv = driver(pool, state, iid, proxy, db_url)
            reasons[iid] = connect_fails(drv, sink)
            drv.disconnect()
        # neonize leaves each session's store connection open for the host's life; the host
        # ends them when the session is over (they would fill max_connections on reconnects)
        wait_until(lambda: store_backends(db_url) == [], timeout=30, what="connections ended")
        assert all(h.proc is not None and h.proc.poll() is None for h in pool.hosts.values())
        assert all(h.restarts == 0 for h in pool.hosts.values())
    finally:
        pool.stop()
    # Both got as far as the dial: the store was opened and migrated first.
    assert all("socks connect" in r or "dial" in r for r in reasons.values()), reasons
    tables = whatsmeow_tables(db_url)
    s1, s2 = wm_pg.schema_for("wa1"), wm_pg.schema_for("wa2")
    assert set(tables) == {s1, s2}  # nothing in public, nothing shared
    assert tables[s1] == tables[s2] >= 15
    for schema in (s1, s2):
        (row,) = query(db_url, f'SELECT version, compat FROM "{schema}".whatsmeow_version')
        assert int(str(row[0])) >= 15  # whatsmeow ran its full schema script there
    assert not list((state / "whatsmeow").glob("*.db"))  # no session file on the node


def test_without_our_version_table_a_second_schema_is_not_migrated(db_url: str, make_proxy) -> None:
    """Why prepare() creates `whatsmeow_version`: the library's existence check ignores the
    schema, so a second instance's schema is taken as migrated (re-check on neonize upgrades)."""
    proxy = make_proxy("refuse").url
    first = wm_pg.session_url(db_url, "first")
    wm_pg.prepare(first)
    assert "dial" in probe(first, proxy)["error"]
    bare = wm_pg.session_url(db_url, "bare")
    query(db_url, f'CREATE SCHEMA "{wm_pg.schema_of(bare)}"')  # a schema alone, as one would
    assert "whatsmeow_version" in probe(bare, proxy)["error"]
    wm_pg.prepare(bare)
    assert "dial" in probe(bare, proxy)["error"]


def test_another_node_opens_the_same_store_and_loads_the_paired_device(
    db_url: str, make_proxy, workdir: Path, offline: None
) -> None:
    proxy = make_proxy("refuse").url
    pool_a, state_a = node(workdir, "a")
    try:
        sink, drv = driver(pool_a, state_a, "mv1", proxy, db_url)
        connect_fails(drv, sink)
        drv.disconnect()
    finally:
        pool_a.stop()
    schema = wm_pg.schema_for("mv1")
    insert_device(db_url, schema)  # what a pairing on node A leaves in the store
    before = whatsmeow_tables(db_url)

    pool_b, state_b = node(workdir, "b")  # node B: another state directory, nothing copied
    try:
        sink, drv = driver(pool_b, state_b, "mv1", proxy, db_url)
        assert drv.db == session_location(state_a, "mv1", db_url)  # the node does not matter
        connect_fails(drv, sink)
        drv.disconnect()
    finally:
        pool_b.stop()
    assert whatsmeow_tables(db_url) == before
    assert query(db_url, f'SELECT jid FROM "{schema}".whatsmeow_device') == [(DEVICE_JID,)]
    assert not (state_b / "whatsmeow").exists() or not list((state_b / "whatsmeow").iterdir())
    # and the library, given that location, logs in as the device paired on node A
    me = probe(drv.db, proxy, me=True)["me"]
    assert me == {"user": "5511999990001", "device": 7, "push_name": "paired on node A"}


def test_delete_and_logout_drop_only_that_instance_schema(
    db_url: str, make_proxy, workdir: Path, offline: None
) -> None:
    proxy = make_proxy("refuse").url
    pool, state = node(workdir, "a")
    try:
        for iid in ("dl1", "dl2", "dl3"):
            sink, drv = driver(pool, state, iid, proxy, db_url)
            connect_fails(drv, sink)
            if iid == "dl1":
                drv.delete_session()  # the pool drops it when the host has closed the session
            elif iid == "dl3":
                drv.logout()  # no live session: the driver drops it itself
                assert sink.wait(lambda evs: any(type(e).__name__ == "LoggedOut" for e in evs))
            else:
                drv.disconnect()
        assert sessions.has_session("whatsmeow", state, "dl2", db_url)
        # instance.delete's call (supervisor), whatever the pool did
        sessions.remove_session("whatsmeow", state, "dl1", db_url)
        wait_until(lambda: wm_pg.schema_for("dl1") not in whatsmeow_tables(db_url), timeout=30)
    finally:
        pool.stop()
    assert set(whatsmeow_tables(db_url)) == {wm_pg.schema_for("dl2")}
    assert not sessions.has_session("whatsmeow", state, "dl1", db_url)
    assert not sessions.has_session("whatsmeow", state, "dl3", db_url)
    sessions.remove_session("whatsmeow", state, "dl1", db_url)  # idempotent


def test_an_unreachable_session_store_is_a_failed_connect_without_the_password(
    make_proxy, workdir: Path, offline: None
) -> None:
    from loguru import logger

    lines: list[str] = []
    sink_id = logger.add(lambda m: lines.append(str(m)), level="DEBUG")
    pool, state = node(workdir, "a")
    try:
        url = "postgresql://waz:sekret-pw@127.0.0.1:1/waz"
        sink, drv = driver(pool, state, "nopg", make_proxy("refuse").url, url)
        reason = connect_fails(drv, sink)
        # the host's own log line (stderr, relayed by the pool) names the store, masked
        wait_until(lambda: any("session store" in x for x in lines), timeout=30)
    finally:
        pool.stop()
        logger.remove(sink_id)
    assert reason.startswith("connect failed: session store:")
    assert "sekret-pw" not in reason
    assert any("waz:***@127.0.0.1:1" in x for x in lines)
    assert not any("sekret-pw" in x for x in lines)


def test_a_logout_with_the_store_unreachable_still_logs_out(workdir: Path, offline: None) -> None:
    pool, state = node(workdir, "a")
    try:
        sink, drv = driver(pool, state, "lo1", "", "postgresql://waz@127.0.0.1:1/waz")
        drv.logout()  # no live session: the driver drops the schema itself, and cannot
        assert [type(e).__name__ for e in sink.events] == ["LoggedOut"]
    finally:
        pool.stop()
