"""`waz-actors backup DEST`: an online copy of the daemon's SQLite database.

Uses sqlite3's backup API on the file directly, which is safe while the daemon writes (WAL
mode: readers see a consistent snapshot), then checks the copy with `PRAGMA integrity_check`.
The copy is written next to DEST and renamed into place only once it checked out, so a failed
backup never leaves a half-written DEST behind. Like the database, the copy is mode 0600.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import click

from waz_actors.cli.common import Conn, Spinner, emit_json, fail, json_option, usage_error

PAGES_PER_STEP = 1024  # pages copied per step; the daemon's writers get the lock in between


def backup_database(source: Path, dest: Path, progress: Spinner | None = None) -> dict[str, object]:
    """Copy `source` into `dest` online; raise sqlite3.Error or ValueError (integrity)."""
    tmp = dest.with_name(f".{dest.name}.partial")
    tmp.unlink(missing_ok=True)
    # Messages and token hashes: the copy is created readable by its owner only (SQLite keeps
    # an existing file's mode, and gives its journal the same), never world-readable first.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    started = time.monotonic()
    # mode=rw: never create an empty database where the daemon's should be.
    src = sqlite3.connect(f"file:{source}?mode=rw", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(tmp)
        try:

            def step(status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress.update(f"backup: {total - remaining}/{total} pages")

            src.backup(dst, pages=PAGES_PER_STEP, progress=step)
            check = [r[0] for r in dst.execute("PRAGMA integrity_check").fetchall()]
            pages = dst.execute("PRAGMA page_count").fetchone()[0]
            # A standalone copy: no WAL side files needed to open it.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
    finally:
        src.close()
    if check != ["ok"]:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"integrity check of the copy failed: {'; '.join(check[:3])}")
    os.replace(tmp, dest)
    return {
        "source": str(source),
        "dest": str(dest),
        "pages": pages,
        "bytes": dest.stat().st_size,
        "integrity": "ok",
        "seconds": round(time.monotonic() - started, 3),
    }


@click.command()
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Daemon config.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Where waz.db lives.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="The database file itself.")
@click.option("--force", is_flag=True, help="Overwrite DEST if it exists.")
@json_option
def backup(
    dest: str,
    config_path: str | None,
    state_dir: str | None,
    db_path: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Copy <state dir>/waz.db to DEST while the daemon runs, then integrity-check the copy."""
    conn = Conn(config_path=config_path, state_dir_opt=state_dir)
    if not db_path and conn.config().store.url:
        raise usage_error("the store is PostgreSQL (store.url): back it up with pg_dump")
    if db_path:
        source = Path(db_path)
    elif state_dir or os.environ.get("WAZ_STATE_DIR"):
        source = conn.state_dir / "waz.db"
    else:
        source = conn.config().db_path
    target = Path(dest)
    if not source.is_file():
        raise usage_error(f"no database at {source} (use --state-dir, --config or --db)")
    if target.exists() and not force:
        raise usage_error(f"{target} exists; use --force to overwrite")
    if target.resolve() == source.resolve():
        raise usage_error("DEST is the live database itself")
    if not target.parent.is_dir():
        raise usage_error(f"{target.parent} is not a directory")
    try:
        with Spinner("backup") as spin:
            result = backup_database(source, target, spin)
    except (sqlite3.Error, ValueError, OSError) as e:
        raise fail(f"backup of {source} failed: {e}") from None
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"backup: {target} ({result['pages']} pages, {result['bytes']} bytes,"
            f" {result['seconds']} s), integrity ok"
        )
