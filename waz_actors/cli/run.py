"""`waz-actors run`: the daemon in the foreground (systemd runs it like this)."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file.")
@click.option("--state-dir", type=click.Path(file_okay=False), help="Overrides daemon.state_dir.")
@click.option(
    "--runtime-dir", type=click.Path(file_okay=False), help="Overrides daemon.runtime_dir."
)
@click.option("--demo", is_flag=True, help="Seed three sim instances and send demo traffic.")
@click.option("--time-scale", type=float, help="Overrides daemon.time_scale (tests, demos).")
def run(
    config_path: str | None,
    state_dir: str | None,
    runtime_dir: str | None,
    demo: bool,
    time_scale: float | None,
) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    from waz_actors import config as config_mod
    from waz_actors.errors import ConfigError, StateDirLocked

    try:
        cfg = config_mod.load(config_path)
        overrides: dict[str, object] = {}
        if state_dir:
            overrides["state_dir"] = state_dir
        if runtime_dir:
            overrides["runtime_dir"] = runtime_dir
        if demo:
            overrides["demo"] = True
        if time_scale is not None:
            if time_scale <= 0:
                raise ConfigError(f"--time-scale: must be greater than 0, got {time_scale}")
            overrides["time_scale"] = time_scale
        cfg = cfg.with_overrides(**overrides)
        if cfg.daemon.demo:
            from waz_actors.app.demo import demo_config

            cfg = demo_config(cfg)
    except ConfigError as e:
        click.echo(f"waz-actors: config error: {e}", err=True)
        sys.exit(2)

    from waz_actors.app.service import serve

    try:
        sys.exit(serve(cfg, config_path=config_path, overrides=overrides))
    except StateDirLocked as e:
        click.echo(f"waz-actors: {e}", err=True)
        sys.exit(1)
