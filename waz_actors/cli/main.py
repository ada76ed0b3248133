"""Entry point. Command groups live in their own modules and are imported only when used, so
client commands start fast (no pykka, loguru or neonize on that path, and `status` does not
pay for `backup`'s sqlite3 or `watch`'s statistics)."""

from __future__ import annotations

import importlib

import click

from waz_actors import __version__
from waz_actors.cli.run import run

# name -> "module:attribute"; listed in `--help` in this order.
LAZY_COMMANDS = {
    "status": "waz_actors.cli.status:status",
    "instance": "waz_actors.cli.instance:instance",
    "send": "waz_actors.cli.message:send",
    "message": "waz_actors.cli.message:message",
    "queue": "waz_actors.cli.queue:queue",
    "inbox": "waz_actors.cli.inbox:inbox",
    "download": "waz_actors.cli.inbox:download",
    "groups": "waz_actors.cli.inbox:groups",
    "contacts": "waz_actors.cli.inbox:contacts",
    "watch": "waz_actors.cli.watch:watch",
    "probe": "waz_actors.cli.probe:probe",
    "token": "waz_actors.cli.token:token",
    "keys": "waz_actors.cli.keys:keys",
    "config": "waz_actors.cli.config_cmd:config",
    "backup": "waz_actors.cli.backup:backup",
    "prune": "waz_actors.cli.prune:prune",
    "sim": "waz_actors.cli.sim:sim",
    "webhook": "waz_actors.cli.webhook:webhook",
    "http": "waz_actors.cli.http:http",
    "cluster": "waz_actors.cli.cluster:cluster",
    "campaign": "waz_actors.cli.campaign:campaign",
    "whatsmeow": "waz_actors.cli.whatsmeow_cmd:whatsmeow",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *LAZY_COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="waz-actors")
def cli() -> None:
    """waz-actors: keep many WhatsApp sessions alive and deliver every message once."""


cli.add_command(run)


def main() -> None:
    cli()
