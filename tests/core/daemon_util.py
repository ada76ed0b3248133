"""Helpers to run a real in-process Daemon (real actors, real SQLite, scaled real time)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from waz_actors.actors.fleet import accept_message
from waz_actors.app.runtime import Daemon
from waz_actors.config import Config, InstanceConfig
from waz_actors.store.records import MessageRecord

FAST = 0.001  # one daemon second lasts one real millisecond


def fast_config(tmp: Path, *, instances: int = 0, **sections: dict[str, Any]) -> Config:
    cfg = Config()
    daemon = dataclasses.replace(
        cfg.daemon,
        state_dir=str(tmp / "state"),
        runtime_dir=str(tmp / "run"),
        time_scale=FAST,
        connect_rate=1000.0,
        shutdown_timeout=10.0,
    )
    # Timeouts stay generous in real time (5 s): a loaded CI machine must not turn a slow
    # answer into a timeout path the test did not ask for; so does the liveness window
    # (keepalive x 3 = 6 s real).
    cfg = dataclasses.replace(
        cfg,
        connection=dataclasses.replace(cfg.connection, timeout=5000.0, keepalive=2000.0),
        queue=dataclasses.replace(cfg.queue, processing_timeout=5000.0),
        daemon=daemon,
        instances=tuple(InstanceConfig(id=f"i{n}", tenant="t1") for n in range(instances)),
    )
    for name, values in sections.items():
        cfg = dataclasses.replace(cfg, **{name: dataclasses.replace(getattr(cfg, name), **values)})
    return cfg


def state_of(d: Daemon, iid: str) -> str | None:
    snap = d.board.get(iid)
    return snap.state if snap else None


def send(d: Daemon, iid: str, text: str, tenant: str = "t1") -> MessageRecord:
    assert d.fleet is not None
    rec, _ = accept_message(
        d.fleet, instance_id=iid, tenant=tenant, to="6281234567890", text=text
    ).result(10)
    return rec


def statuses(d: Daemon, ids: list[str]) -> list[str]:
    d.store.flush(5)
    return [d.store.get_message(i).status for i in ids]  # type: ignore[union-attr]
