"""The online backup: a consistent copy taken from a read connection while writes go on."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from waz_actors.errors import BadRequest
from waz_actors.store.connection import Connections, create_private


def backup(db: Connections, dest: str | Path) -> None:
    """Copy the database to `dest`, through a temporary file renamed at the end, so `dest` is
    never a half-written database."""
    target = Path(dest).expanduser()
    if target.resolve() == db.path.resolve():
        raise BadRequest("backup: destination is the live database", {"field": "dest"})
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    create_private(tmp)  # mode 0600 from the start, like the database itself
    with db.read() as conn:
        out = sqlite3.connect(tmp)
        try:
            conn.backup(out)
            # A self-contained file: no -wal beside it to copy along.
            out.execute("PRAGMA journal_mode = DELETE")
        finally:
            out.close()
    os.replace(tmp, target)


__all__ = ["backup"]
