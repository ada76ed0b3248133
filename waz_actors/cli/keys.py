"""`waz-actors keys generate`: a CURVE key pair for tcp control endpoints.

Files use the ZeroMQ certificate format that `zmq.auth.load_certificate` (the daemon) reads:
NAME.key holds the public key only, NAME.key_secret both keys and is created mode 0600.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import click

from waz_actors.cli.common import emit_json, fail, json_option, usage_error

_KEY = re.compile(r'^\s*(public|secret)-key\s*=\s*"([^"]{40})"\s*$', re.M)


def certificate(public: bytes, secret: bytes | None) -> str:
    kind = "Secret" if secret else "Public"
    lines = [
        f"#   ****  Generated on {time.strftime('%Y-%m-%d %H:%M:%S')} by waz-actors  ****",
        f"#   ZeroMQ CURVE {kind} Certificate",
        "#   Exchange securely, or use a secure mechanism to verify the contents",
        "#   of this file after exchange. Store public certificates in your home",
        "#   directory, in the .curve subdirectory.",
        "",
        "metadata",
        "curve",
        f'    public-key = "{public.decode("ascii")}"',
    ]
    if secret:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    return "\n".join(lines) + "\n"


def _read(path: str, which: str) -> bytes:
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise usage_error(f"{path}: cannot read key file: {e}") from None
    keys = dict(_KEY.findall(text))
    if which not in keys:
        raise usage_error(f"{path}: no {which} key in this file")
    return keys[which].encode("ascii")


def read_public(path: str) -> bytes:
    return _read(path, "public")


def read_secret(path: str) -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file."""
    return _read(path, "public"), _read(path, "secret")


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
        _write(secret_path, certificate(public, secret), 0o600)
        _write(public_path, certificate(public, None), 0o644)
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


def _write(path: Path, text: str, mode: int) -> None:
    """Create with the final mode from the start: the secret is never readable by others."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; never widen beyond `mode`
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
