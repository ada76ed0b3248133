"""`waz-actors keys generate`: a CURVE key pair for tcp control endpoints.

The files are read and written by waz_actors.control.keys, which the daemon uses too.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from waz_actors.cli.common import emit_json, fail, json_option, usage_error
from waz_actors.control import keys as keyfiles


@click.group()
def keys() -> None:
    """CURVE keys for tcp control endpoints."""


@keys.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where to write the files.",
)
@click.option("--name", default="server", show_default=True, help="File stem: NAME.key(_secret).")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@json_option
def generate(directory: str, name: str, force: bool, as_json: bool) -> None:
    """Write NAME.key (public) and NAME.key_secret (mode 0600)."""
    import zmq

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise usage_error(f"--name {name!r}: letters, digits, '.', '_' and '-' only")
    if not zmq.has("curve"):
        raise fail("this libzmq was built without CURVE support")
    base = Path(directory)
    public_path, secret_path = base / f"{name}.key", base / f"{name}.key_secret"
    existing = [str(p) for p in (public_path, secret_path) if p.exists()]
    if existing and not force:
        raise usage_error(f"{', '.join(existing)} exists; use --force to overwrite")
    public, secret = zmq.curve_keypair()
    try:
        base.mkdir(parents=True, exist_ok=True)
        keyfiles.write(secret_path, keyfiles.certificate(public, secret), 0o600)
        keyfiles.write(public_path, keyfiles.certificate(public, None), 0o644)
    except OSError as e:
        raise fail(f"cannot write keys in {base}: {e.strerror or e}") from None
    if as_json:
        emit_json(
            {
                "public_key": public.decode("ascii"),
                "public_file": str(public_path),
                "secret_file": str(secret_path),
            }
        )
    else:
        click.echo(f"public key  {public.decode('ascii')}")
        click.echo(f"wrote {public_path} and {secret_path} (mode 0600)")
