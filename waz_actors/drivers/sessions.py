"""An instance's stored session (its login), as each driver keeps it under the state dir.

`instance.delete` removes it, so that a later instance created with the same id does not log in
as the deleted one; `instance.create` can tell whether one was left behind. Each driver module
provides `has_session(state_dir, instance_id)` and `remove_session(state_dir, instance_id)`.
Call them only while no driver of that instance runs: a live session may write its files again.
In a cluster whatsmeow keeps sessions in the shared PostgreSQL instead (`session_url`,
drivers/wm_pg.py), so they follow the instance's lease from node to node.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

HasSession = Callable[[str | Path, str], bool]
RemoveSession = Callable[[str | Path, str], None]


def session_url(cfg: Any) -> str:
    """The PostgreSQL URL sessions are kept in: the store's, when the daemon is one node of a
    cluster (its instances move between nodes); empty for a single daemon (files)."""
    url = str(cfg.store.url or "")
    if cfg.cluster.enabled and url.startswith(("postgresql://", "postgres://")):
        return url
    return ""


def _functions(driver: str) -> tuple[HasSession, RemoveSession]:
    # Imported on use: the whatsmeow module is not needed by sim-only daemons.
    if driver == "sim":
        from waz_actors.drivers.sim import driver as sim

        return sim.has_session, sim.remove_session
    if driver == "whatsmeow":
        from waz_actors.drivers import whatsmeow

        return whatsmeow.has_session, whatsmeow.remove_session
    raise ValueError(f"unknown driver {driver!r}")


def has_session(driver: str, state_dir: str | Path, instance_id: str, url: str = "") -> bool:
    """Whether `driver` keeps a session of `instance_id` under `state_dir` (or, whatsmeow in a
    cluster, in `url`'s database).

    ValueError for an unknown driver or an id the driver cannot store a session under.
    """
    if url and driver == "whatsmeow":
        from waz_actors.drivers import whatsmeow

        return whatsmeow.has_session(state_dir, instance_id, url)
    return _functions(driver)[0](state_dir, instance_id)


def remove_session(driver: str, state_dir: str | Path, instance_id: str, url: str = "") -> None:
    """Delete the instance's stored session, if any (idempotent). ValueError as `has_session`."""
    if url and driver == "whatsmeow":
        from waz_actors.drivers import whatsmeow

        whatsmeow.remove_session(state_dir, instance_id, url)
        return
    _functions(driver)[1](state_dir, instance_id)


def describe(driver: str, state_dir: str | Path, instance_id: str, url: str = "") -> str:
    """Where the driver keeps the session of `instance_id`, for an operator to remove it."""
    if driver == "whatsmeow":
        from waz_actors.drivers import wm_pg
        from waz_actors.drivers.whatsmeow import session_db_path

        if url:
            return f"schema {wm_pg.schema_for(instance_id)} in the cluster's PostgreSQL"
        return f"{session_db_path(state_dir, instance_id)}*"
    return f"the {driver} session of {instance_id} under {state_dir}"


def refuse_leftover(cfg: Any, driver: str, instance_id: str) -> None:
    """Raise Exists when a session of `instance_id` is stored where this daemon keeps them (a
    deleted instance's, not removed): a new instance with that id would log in as its number."""
    from waz_actors.errors import Exists

    url = session_url(cfg)
    try:
        found = has_session(driver, cfg.state_dir, instance_id, url)
    except ValueError:
        return  # an id the driver cannot store a session under: none can be left
    if found:
        where = describe(driver, cfg.state_dir, instance_id, url)
        what, how = ("session", "DROP SCHEMA ... CASCADE") if url else ("session file", "rm")
        raise Exists(
            f"a {what} of a deleted instance {instance_id!r} is still there ({where}); "
            "it would log the new instance in as that instance's number: remove it "
            f"({how} {where}; no instance uses it) or choose another id",
            {"field": "instance_id", "session": where, "driver": driver},
        )


def remove_stored(cfg: Any, driver: str, instance_id: str) -> None:
    """`remove_session` where this daemon keeps sessions (its state dir, or a cluster's
    PostgreSQL)."""
    remove_session(driver, cfg.state_dir, instance_id, session_url(cfg))


__all__ = [
    "describe",
    "has_session",
    "refuse_leftover",
    "remove_session",
    "remove_stored",
    "session_url",
]
