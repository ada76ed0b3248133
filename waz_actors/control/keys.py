"""CURVE key files: the one reader and writer for the daemon and the CLI (no click here).

Files use the ZeroMQ certificate format that `zmq.auth` also reads and writes: NAME.key holds
the public key only, NAME.key_secret both keys and is created mode 0600.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

_KEY = re.compile(r'^\s*(public|secret)-key\s*=\s*"([^"]{40})"\s*$', re.M)


class KeyFileError(ValueError):
    """A key file that cannot be read or lacks the key asked for; the message names the file."""


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


def _read(path: str | Path, which: str) -> bytes:
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise KeyFileError(f"{path}: cannot read key file: {e}") from None
    keys: dict[str, str] = dict(_KEY.findall(text))
    if which not in keys:
        raise KeyFileError(f"{path}: no {which} key in this file")
    return keys[which].encode("ascii")


def read_public(path: str | Path) -> bytes:
    return _read(path, "public")


def read_secret(path: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) from a NAME.key_secret file."""
    return _read(path, "public"), _read(path, "secret")


def write(path: Path, text: str, mode: int) -> None:
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
