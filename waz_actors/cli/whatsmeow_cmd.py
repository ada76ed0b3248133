"""`waz-actors whatsmeow import-sessions`: a single daemon's session files into a cluster's
PostgreSQL (drivers/wm_import.py), so its numbers need no new pairing after the switch."""

from __future__ import annotations

from pathlib import Path

import click

from waz_actors.cli.common import Conn, emit_json, fail, json_option, usage_error


@click.group()
def whatsmeow() -> None:
    """whatsmeow sessions (the real WhatsApp driver)."""


@whatsmeow.command("import-sessions")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Daemon config.")
@click.option(
    "--state-dir", type=click.Path(file_okay=False), help="The single daemon's state directory."
)
@click.option("--id", "ids", multiple=True, help="Only these instances (repeatable).")
@json_option
def import_sessions(
    config_path: str | None, state_dir: str | None, ids: tuple[str, ...], as_json: bool
) -> None:
    """Copy <state_dir>/whatsmeow/<id>.db into the cluster's PostgreSQL (a schema per
    instance). Run with the daemon stopped, before the first clustered start; the config must
    have [cluster] enabled and the PostgreSQL store.url. A schema that already holds a session
    is never overwritten. The files are left in place: remove them once the cluster runs."""
    from waz_actors.drivers import sessions, wm_pg
    from waz_actors.drivers.whatsmeow import session_location
    from waz_actors.drivers.wm_import import import_file

    conn = Conn(config_path=config_path, state_dir_opt=state_dir)
    url = sessions.session_url(conn.config())
    if not url:
        raise usage_error("needs a config with [cluster] enabled and a postgresql:// store.url")
    folder = Path(conn.state_dir) / "whatsmeow"
    files = sorted(folder.glob("*.db")) if folder.is_dir() else []
    if ids:
        files = [f for f in files if f.stem in ids]
        missing = sorted(set(ids) - {f.stem for f in files})
        if missing:
            raise usage_error(f"no session file for {', '.join(missing)} in {folder}")
    results: dict[str, dict[str, object]] = {}
    for f in files:
        try:
            location = session_location(conn.state_dir, f.stem, url)
            counts = import_file(f, location)
            results[f.stem] = {"schema": wm_pg.schema_of(location), "rows": counts}
        except Exception as e:  # one line per instance, the others still go
            results[f.stem] = {"error": wm_pg.masked(str(e))}
    failed = sorted(i for i, r in results.items() if "error" in r)
    if as_json:
        emit_json({"state_dir": str(conn.state_dir), "instances": results})
    else:
        for iid, r in results.items():
            if "error" in r:
                click.echo(f"{iid}: not imported: {r['error']}")
            else:
                rows = r["rows"]
                total = sum(rows.values()) if isinstance(rows, dict) else 0
                click.echo(f"{iid}: {total} rows into schema {r['schema']}")
        click.echo(f"{len(results) - len(failed)} of {len(results)} session(s) imported")
    if failed:
        raise fail(f"not imported: {', '.join(failed)}")
