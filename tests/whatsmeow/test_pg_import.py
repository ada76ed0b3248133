"""`waz-actors whatsmeow import-sessions`: a single daemon's session file, created by the real
library and holding a paired device, copied into the cluster's PostgreSQL; the library then
loads that device from the instance's schema. A schema holding a session is never overwritten."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip("neonize")

from click.testing import CliRunner

from tests.whatsmeow.test_pg_sessions import DEVICE_JID, probe, query
from waz_actors.cli.main import cli
from waz_actors.drivers import wm_pg
from waz_actors.drivers.whatsmeow import session_db_path, session_location


def paired_file(state: Path, iid: str, proxy: str) -> Path:
    """A session file as a single daemon leaves it after pairing (keys of the right lengths)."""
    path = session_db_path(state, iid)
    path.parent.mkdir(parents=True)
    assert "dial" in probe(str(path), proxy)["error"]  # the library created its tables
    keys = [bytes([i]) * n for i, n in ((1, 32), (2, 32), (3, 32), (4, 64), (5, 32))]
    sigs = [bytes([i]) * n for i, n in ((6, 64), (7, 32), (8, 64))]
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key,"
            " signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details,"
            " adv_account_sig, adv_account_sig_key, adv_device_sig, push_name)"
            " VALUES (?, 1234, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, 'paired on the single node')",
            (DEVICE_JID, *keys, b"", *sigs),
        )
        db.execute(
            "INSERT INTO whatsmeow_identity_keys (our_jid, their_id, identity) VALUES (?, ?, ?)",
            (DEVICE_JID, "5511888880000.0", bytes(range(32))),
        )
        db.execute(
            "INSERT INTO whatsmeow_chat_settings (our_jid, chat_jid, muted_until, pinned,"
            " archived) VALUES (?, '5511777770000@s.whatsapp.net', 0, 1, 0)",
            (DEVICE_JID,),
        )
    return path


def write_config(tmp: Path, db_url: str, cluster: bool = True) -> Path:
    cfg = tmp / "waz.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp / "state"}"\n[store]\nurl = "{db_url}"\n'
        + ('[cluster]\nenabled = true\nnode_id = "n1"\n' if cluster else "")
    )
    return cfg


def test_import_copies_a_paired_session_the_library_then_loads(
    db_url: str, tmp_path: Path, make_proxy
) -> None:
    proxy = make_proxy("refuse").url
    paired_file(tmp_path / "state", "one", proxy)
    cfg = write_config(tmp_path, db_url)
    res = CliRunner().invoke(cli, ["whatsmeow", "import-sessions", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)["instances"]["one"]
    schema = wm_pg.schema_for("one")
    assert out["schema"] == schema
    assert out["rows"]["whatsmeow_device"] == 1 and out["rows"]["whatsmeow_identity_keys"] == 1
    assert query(db_url, f'SELECT pinned, archived FROM "{schema}".whatsmeow_chat_settings') == [
        (True, False)
    ]
    (ident,) = query(db_url, f'SELECT identity FROM "{schema}".whatsmeow_identity_keys')
    assert bytes(ident[0]) == bytes(range(32))  # type: ignore[arg-type]
    location = session_location(tmp_path / "state", "one", db_url)
    me = probe(location, proxy, me=True)["me"]
    assert me == {"user": "5511999990001", "device": 7, "push_name": "paired on the single node"}

    # again: the schema holds a session now, and is left as it is
    res = CliRunner().invoke(cli, ["whatsmeow", "import-sessions", "--config", str(cfg)])
    assert res.exit_code != 0
    assert "already holds a session" in res.output
    assert query(db_url, f'SELECT count(*) FROM "{schema}".whatsmeow_device') == [(1,)]


def test_import_refuses_without_a_cluster_or_for_an_unknown_id(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    solo = write_config(tmp_path, db_url, cluster=False)
    res = CliRunner().invoke(cli, ["whatsmeow", "import-sessions", "--config", str(solo)])
    assert res.exit_code != 0 and "[cluster] enabled" in res.output
    cfg = write_config(tmp_path, db_url)
    args = ["whatsmeow", "import-sessions", "--config", str(cfg), "--id", "nope"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code != 0 and "no session file for nope" in res.output
    assert query(db_url, "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'waz_wm_%%'") == [
        (0,)
    ]
