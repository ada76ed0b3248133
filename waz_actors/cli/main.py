"""Entry point. Command groups live in their own modules and import heavy things lazily, so
client commands start fast (no pykka, loguru or neonize on that path)."""

from __future__ import annotations

import click

from waz_actors import __version__
from waz_actors.cli.backup import backup
from waz_actors.cli.config_cmd import config
from waz_actors.cli.instance import instance
from waz_actors.cli.keys import keys
from waz_actors.cli.message import message, send
from waz_actors.cli.probe import probe
from waz_actors.cli.queue import queue
from waz_actors.cli.run import run
from waz_actors.cli.sim import sim
from waz_actors.cli.status import status
from waz_actors.cli.token import token
from waz_actors.cli.watch import watch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="waz-actors")
def cli() -> None:
    """waz-actors: keep many WhatsApp sessions alive and deliver every message once."""


cli.add_command(run)
for _command in (status, instance, send, message, queue, watch, probe, token, keys, config):
    cli.add_command(_command)
cli.add_command(backup)
cli.add_command(sim)


def main() -> None:
    cli()
