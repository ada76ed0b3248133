"""`waz-actors prune` (issue 11, item 10): offline on the state directory, like backup;
--dry-run counts per kind and changes nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.cli.conftest import Cli
from tests.pg import fresh_schema
from tests.store.store_helpers import T0, FakeWall, instance, message
from waz_actors.store import Store
from waz_actors.store.connection import connect
from waz_actors.store.schema import MIGRATIONS, migrate


def old_database(state: Path, url: str = "") -> dict[str, str]:
    """Messages settled in 2023 (far beyond 30 days), one still queued, and an old event
    (in <state>/waz.db, or on PostgreSQL at `url`)."""
    wall = FakeWall(T0)
    ids = {}
    with Store(url or state / "waz.db", wall=wall) as s:
        s.create_instance(instance("i1", "t1"))
        for status in ("sent", "failed", "queued"):
            rec, _ = s.enqueue(message(idempotency_key=f"k-{status}"), max_queue=10).result()
            if status != "queued":
                s.update_message(rec.message_id, "sending").result()
                s.update_message(rec.message_id, status).result()
            ids[status] = rec.message_id
        s.log_event("instance.i1.state", {"state": "online"}).result()
    return ids


def counts(db: Path) -> tuple[int, int, int]:
    with sqlite3.connect(db) as raw:
        return tuple(  # type: ignore[return-value]
            raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("messages", "message_history", "events")
        )


def test_prune_dry_run_then_prune(tmp_path: Path) -> None:
    state = tmp_path / "state"
    ids = old_database(state)
    db = state / "waz.db"
    run = Cli({"WAZ_CONFIG": "", "WAZ_STATE_DIR": str(state)})
    before = counts(db)
    doc = json.loads(run("prune", "--dry-run", "--json").stdout)
    assert doc["dry_run"] is True and doc["db"] == str(db)
    assert doc["counts"] == {
        "messages": 2,
        "history": 6,
        "events": 1,
        "idempotency_keys": 0,
        "inbox": 0,
        "webhook_deliveries": 0,
        "webhook_events": 0,
    }
    assert counts(db) == before
    text = run("prune", "--dry-run").stdout
    assert "would delete 2 final messages" in text and "would delete 6 history rows" in text
    assert "would delete 1 events" in text and "would delete 0 idempotency keys" in text

    done = json.loads(run("prune", "--json").stdout)
    assert done["dry_run"] is False and done["counts"] == doc["counts"]
    with Store(db) as s:
        assert s.get_message(ids["sent"]) is None and s.get_message(ids["failed"]) is None
        kept = s.get_message(ids["queued"])
        assert kept is not None and kept.status == "queued" and kept.idempotency_key == "k-queued"
        assert s.pending_count("i1") == 1
    assert "deleted 0 final messages" in run("prune").stdout


def test_prune_options(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old_database(state)
    run = Cli({"WAZ_CONFIG": "", "WAZ_STATE_DIR": ""})
    # 0 days keeps messages and events; keys of final messages can still expire on their own
    doc = json.loads(
        run(
            "prune", "--state-dir", str(state), "--days", "0", "--idempotency-days", "1", "--json"
        ).stdout
    )
    assert doc["counts"] == {
        "messages": 0,
        "history": 0,
        "events": 0,
        "idempotency_keys": 2,
        "inbox": 0,
        "webhook_deliveries": 0,
        "webhook_events": 0,
    }
    assert doc["older_than"] is None
    missing = run("prune", "--state-dir", str(tmp_path / "nope"), code=2)
    assert "no database" in missing.stderr
    assert not (tmp_path / "nope").exists()  # never creates an empty database
    run("prune", "--days", "-1", "--db", str(state / "waz.db"), code=2)


def test_dry_run_does_not_even_migrate(tmp_path: Path) -> None:
    db = tmp_path / "waz.db"
    conn = connect(db)
    migrate(conn, MIGRATIONS[:1])
    conn.close()
    run = Cli({"WAZ_CONFIG": "", "WAZ_STATE_DIR": ""})
    assert "would delete 0 final messages" in run("prune", "--dry-run", "--db", str(db)).stdout
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1


def test_prune_and_backup_follow_store_url(tmp_path: Path) -> None:
    with fresh_schema() as url:
        ids = old_database(tmp_path, url)
        config = tmp_path / "waz.toml"
        config.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n[store]\nurl = "{url}"\n')
        run = Cli({"WAZ_CONFIG": str(config), "WAZ_STATE_DIR": ""})
        doc = json.loads(run("prune", "--dry-run", "--json").stdout)
        assert doc["counts"]["messages"] == 2 and doc["counts"]["events"] == 1
        done = json.loads(run("prune", "--json").stdout)
        assert done["counts"] == doc["counts"]
        with Store(url) as s:
            assert s.get_message(ids["sent"]) is None
            assert s.get_message(ids["queued"]) is not None
        refused = run("backup", str(tmp_path / "copy.db"), code=2)
        assert "pg_dump" in refused.stderr
