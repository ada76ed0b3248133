"""Names and URLs of whatsmeow sessions in PostgreSQL (drivers/wm_pg.py): safe schema names, the
URL a driver host gets, and logs that never show its password."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest

from waz_actors.drivers import sessions, wm_pg
from waz_actors.drivers.whatsmeow import session_location
from waz_actors.store.sql import redacted

STORE = (
    "postgresql://waz:s3cret@db.example:5433/waz?options=-csearch_path%3Dstore&connect_timeout=5"
)


def test_schema_names_are_bare_identifiers_within_63_bytes_and_distinct() -> None:
    ids = ["a", "A", "a.b", "a_b", "a-b", "X" * 64, "x" * 64, "0lead", "_u"]
    names = [wm_pg.schema_for(i) for i in ids]
    for i, n in zip(ids, names, strict=True):
        assert re.fullmatch(r"waz_wm_[a-z0-9_]+", n) and len(n) <= 63, n
        assert wm_pg.schema_of(wm_pg.session_url(STORE, i)) == n
    assert len(set(names)) == len(ids)  # ids that fold alike still get their own schema
    assert wm_pg.schema_for("a.b") == wm_pg.schema_for("a.b")  # stable across nodes
    with pytest.raises(ValueError):
        wm_pg.schema_for("")


def test_the_host_url_keeps_the_server_and_sets_only_its_schema() -> None:
    url = wm_pg.session_url(STORE, "inst-1", {})
    parts = urlsplit(url)
    assert url.startswith("postgres://")  # the library's PostgreSQL switch (not postgresql://)
    assert (parts.hostname, parts.port, parts.path) == ("db.example", 5433, "/waz")
    assert (parts.username, parts.password) == ("waz", "s3cret")
    q = dict(parse_qsl(parts.query))
    assert q == {
        "connect_timeout": "5",
        "sslmode": "prefer",  # libpq's default, not lib/pq's "require"
        "search_path": wm_pg.schema_for("inst-1"),
    }
    assert wm_pg.schema_of(url) == wm_pg.schema_for("inst-1")
    assert (
        dict(parse_qsl(urlsplit(wm_pg.session_url(STORE + "&sslmode=disable", "i")).query))[
            "sslmode"
        ]
        == "disable"
    )
    admin = wm_pg.admin_url(url)
    assert admin.startswith("postgresql://") and "search_path" not in admin


def test_the_password_and_sslmode_of_the_environment_go_in_the_url() -> None:
    """Hosts do not inherit PG* variables: what the store used from them is in the URL."""
    env = {"PGPASSWORD": "p@ss/w:rd", "PGSSLMODE": "verify-full"}
    parts = urlsplit(wm_pg.session_url("postgresql://waz@db:5432/waz", "i", env))
    assert (parts.username, parts.password) == ("waz", "p%40ss%2Fw%3Ard")  # quoted in the URL
    assert dict(parse_qsl(parts.query))["sslmode"] == "verify-full"
    mine = urlsplit(wm_pg.session_url("postgresql://waz:own@db/waz?sslmode=disable", "i", env))
    assert mine.password == "own" and "sslmode=disable" in mine.query  # the URL's own win
    assert "p%40ss" not in wm_pg.masked(wm_pg.session_url("postgresql://waz@db/waz", "i", env))


def test_foreign_or_hostile_locations_are_refused() -> None:
    with pytest.raises(ValueError):
        wm_pg.session_url("mysql://x@h/db", "i")
    for q in ("search_path=public", 'search_path=waz_wm_x";DROP TABLE t;--', "", "a=b"):
        with pytest.raises(ValueError):
            wm_pg.schema_of(f"postgres://h/db?{q}")
    with pytest.raises(ValueError):  # two search paths: which one would lib/pq take?
        wm_pg.schema_of("postgres://h/db?search_path=waz_wm_a_1&search_path=waz_wm_b_2")
    with pytest.raises(ValueError, match="cannot name a session"):
        session_location("/state", "../etc", STORE)


def test_masked_hides_the_password_only() -> None:
    url = wm_pg.session_url(STORE, "i1")
    shown = wm_pg.masked(url)
    assert "s3cret" not in shown and "waz:***@db.example:5433" in shown
    assert wm_pg.masked("/state/whatsmeow/i1.db") == "/state/whatsmeow/i1.db"
    bare = wm_pg.session_url("postgresql://u@h/db", "i1")
    assert wm_pg.masked(bare) == bare


def test_sessions_move_with_the_lease_only_in_a_cluster_on_postgresql() -> None:
    from waz_actors.config import parse

    solo = parse({"store": {"url": "postgresql://u@h/db"}})
    assert sessions.session_url(solo) == ""  # one daemon keeps files
    cluster = parse({"store": {"url": "postgresql://u@h/db"}, "cluster": {"enabled": True}})
    assert sessions.session_url(cluster) == "postgresql://u@h/db"
    assert session_location("/s", "i", "").endswith("/s/whatsmeow/i.db")
    assert wm_pg.is_pg(session_location("/s", "i", sessions.session_url(cluster)))
    where = sessions.describe("whatsmeow", "/s", "i", "postgresql://u@h/db")
    assert wm_pg.schema_for("i") in where


def test_masked_hides_a_password_in_the_query_string_too() -> None:
    """Review finding 10: libpq takes `password` (and `sslpassword`) as URL parameters."""
    store = "postgresql://db.example/waz?user=waz&password=s3cret&sslmode=require"
    url = wm_pg.session_url(store, "i1")
    shown = wm_pg.masked(url)
    assert "s3cret" not in shown
    assert "user=waz" in shown and "sslmode=require" in shown and "password=***" in shown
    both = "postgres://u:p1@h/db?sslpassword=p2&PASSWORD=p3#frag"
    assert redacted(both) == "postgres://u:***@h/db?sslpassword=***&PASSWORD=***#frag"
    plain = "postgresql://h/db?user=u&passwordless=1&application_name=x"
    assert redacted(plain) == plain
    assert redacted("postgresql://h/db?application_name=password") == (
        "postgresql://h/db?application_name=password"
    )
    assert redacted("/state/waz.db") == "/state/waz.db"
    # A host's stderr line naming the URL is relayed through the daemon's log, whose every
    # message goes through redact_text (drivers/host/client.py, app/logs.py).
    from waz_actors.app.logs import redact_text

    assert "s3cret" not in redact_text(f"[whatsmeow host h1 stderr] open {url}: refused")
