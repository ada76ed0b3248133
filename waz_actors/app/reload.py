"""SIGHUP: apply a changed config's instances one by one; leave the others untouched.

Instances added to the file are created (and started when `autostart`); instances removed
from it are stopped (their data and queues stay: deleting is an explicit operator command);
instances whose driver, tenant, settings or autostart changed are updated and restarted alone.
Other settings take effect at the next start, and the log says which ones changed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from loguru import logger

from waz_actors import config as config_mod
from waz_actors.config import Config, InstanceConfig

if TYPE_CHECKING:
    from waz_actors.app.runtime import Daemon


def plan(old: Config, new: Config) -> dict[str, list[InstanceConfig]]:
    before = {i.id: i for i in old.instances}
    after = {i.id: i for i in new.instances}
    return {
        "added": [after[k] for k in after if k not in before],
        "removed": [before[k] for k in before if k not in after],
        "changed": [after[k] for k in after if k in before and after[k] != before[k]],
    }


def reload_config(
    daemon: Daemon, config_path: str | None, overrides: dict[str, Any]
) -> dict[str, list[str]]:
    """Raises ConfigError (nothing applied) when the new file is bad."""
    new = config_mod.load(config_path).with_overrides(**overrides)
    if daemon.cfg.daemon.demo:
        from waz_actors.app.demo import demo_config

        new = demo_config(new)
    fleet = daemon.fleet
    assert fleet is not None, "reload runs on a started daemon"
    steps = plan(daemon.cfg, new)
    for inst in steps["added"]:
        desired = "running" if inst.autostart else "stopped"
        if daemon.store.get_instance(inst.id) is None:
            fleet.create(inst.id, inst.driver, inst.tenant, dict(inst.settings), desired=desired)
        else:
            _update(daemon, inst)
        logger.bind(instance=inst.id).info("reload: instance added")
    for inst in steps["removed"]:
        if fleet.snapshot(inst.id) is not None:
            fleet.stop(inst.id)
        logger.bind(instance=inst.id).info("reload: instance removed from the config; stopped")
    for inst in steps["changed"]:
        _update(daemon, inst)
        logger.bind(instance=inst.id).info("reload: instance changed; restarted")
    others = [
        f.name
        for f in dataclasses.fields(Config)
        if f.name != "instances" and getattr(daemon.cfg, f.name) != getattr(new, f.name)
    ]
    if others:
        logger.warning(
            "reload: [{}] changed; those settings apply at the next start", "], [".join(others)
        )
    daemon.cfg = dataclasses.replace(daemon.cfg, instances=new.instances)
    summary = {k: [i.id for i in v] for k, v in steps.items()}
    logger.info("reload done: {}", summary)
    return summary


def _update(daemon: Daemon, inst: InstanceConfig) -> None:
    desired = "running" if inst.autostart else "stopped"
    daemon.store.update_instance(
        inst.id,
        driver=inst.driver,
        tenant=inst.tenant,
        settings=dict(inst.settings),
        desired=desired,
    )
    assert daemon.fleet is not None
    daemon.fleet.respawn(inst.id)
