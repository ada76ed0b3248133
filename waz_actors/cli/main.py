"""Entry point. Command groups live in their own modules and import heavy things lazily, so
client commands start fast (no pykka, loguru or neonize on that path)."""

from __future__ import annotations

import click

from waz_actors import __version__
from waz_actors.cli.run import run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="waz-actors")
def cli() -> None:
    """waz-actors: keep many WhatsApp sessions alive and deliver every message once."""


cli.add_command(run)


def main() -> None:
    cli()
