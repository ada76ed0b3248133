"""`waz-actors prune`: apply the retention settings to the database by hand.

Works on the state directory's database like `waz-actors backup`, with or without a running
daemon (SQLite's locking keeps the two apart; each batch is its own short write, so the daemon's
sends wait for one batch at most). `--dry-run` only reads, through a read-only connection: it
counts what would go and changes nothing, not even the schema version.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from waz_actors.cli.common import Conn, emit_json, fail, json_option, usage_error

LABELS = {
    "messages": "final messages",
    "history": "history rows",
    "events": "events",
    "idempotency_keys": "idempotency keys",
    "inbox": "received messages",
    "webhook_deliveries": "webhook deliveries",
    "webhook_events": "webhook event bodies",
}


def _when(t: float | None) -> str:
    if t is None:
        return "kept for ever"
    return "before " + datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def count_only(
    db: Path | str, older_than: float | None, keys_older_than: float | None
) -> dict[str, int]:
    from waz_actors.store.retention import count_prunable
    from waz_actors.store.schema import MIGRATIONS, user_version

    if isinstance(db, str):  # PostgreSQL: the store's own read connection
        from waz_actors.store import Store

        with Store(db) as store:
            return store.prune(older_than, keys_older_than=keys_older_than, dry_run=True)

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        version = user_version(conn)
        if version > len(MIGRATIONS):
            raise ValueError(f"schema version {version} is newer than this program's")
        return count_prunable(conn, older_than, keys_older_than)
    finally:
        conn.close()


def prune_now(
    db: Path | str, older_than: float | None, keys_older_than: float | None, batch: int
) -> dict[str, int]:
    from waz_actors.store import Store

    with Store(db) as store:
        return store.prune(older_than, keys_older_than=keys_older_than, batch=batch)


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Daemon config.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where waz.db lives.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="The database file itself.")
@click.option(
    "--days", type=click.FloatRange(min=0), help="Override [store] retention_days (0: keep)."
)
@click.option(
    "--idempotency-days",
    type=click.FloatRange(min=0),
    help="Override [store] idempotency_days (0: keep).",
)
@json_option
def prune(
    dry_run: bool,
    config_path: str | None,
    state_dir: str | None,
    db_path: str | None,
    days: float | None,
    idempotency_days: float | None,
    as_json: bool,
) -> None:
    """Delete final messages, their history, events and idempotency keys older than the
    retention settings ([store] retention_days, idempotency_days). Never a pending message."""
    from waz_actors.store.retention import cutoffs

    conn = Conn(config_path=config_path, state_dir_opt=state_dir)
    cfg = conn.config()
    source: Path | str
    if db_path:
        source = Path(db_path)
    elif state_dir or os.environ.get("WAZ_STATE_DIR"):
        source = conn.state_dir / "waz.db"
    else:
        source = cfg.store_target  # a PostgreSQL URL when store.url is set
    if isinstance(source, Path) and not source.is_file():
        raise usage_error(f"no database at {source} (use --state-dir, --config or --db)")
    from waz_actors.store.sql import redacted

    shown = redacted(source)  # a URL's password is not echoed
    keep = cfg.store.retention_days if days is None else days
    keys = cfg.store.idempotency_days if idempotency_days is None else idempotency_days
    older_than, keys_older_than = cutoffs(time.time(), keep, keys)
    try:
        if dry_run:
            counts = count_only(source, older_than, keys_older_than)
        else:
            counts = prune_now(source, older_than, keys_older_than, cfg.store.prune_batch)
    except Exception as e:  # sqlite3, OS, SchemaTooNew: one line, not a traceback
        raise fail(f"prune of {shown} failed: {e}") from None
    if as_json:
        emit_json(
            {
                "db": shown,
                "dry_run": dry_run,
                "older_than": older_than,
                "keys_older_than": keys_older_than,
                "counts": counts,
            }
        )
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(f"prune: {shown} ({'dry run' if dry_run else 'done'})")
    click.echo(f"  messages, history, events: {_when(older_than)}")
    click.echo(f"  idempotency keys: {_when(keys_older_than)}")
    for kind, label in LABELS.items():
        click.echo(f"  {verb} {counts[kind]} {label}")
