"""The environment a driver host starts with: what it needs, none of the daemon's secrets.

A host runs a network library that any bug could expose, so it never sees `WAZ_TOKEN` or other
credentials the daemon was given. It keeps what Python, the Go runtime, the resolver and TLS
read, the `*_PROXY` variables (whatsmeow dials through them unless a session names a proxy) and
`WAZ_WHATSMEOW_OFFLINE`, the only WAZ_ variable the host reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_PROJECT_ROOT = str(Path(__file__).resolve().parents[3])
_KEEP = {"PATH", "HOME", "LANG", "TZ", "TMPDIR", "ZONEINFO", "LD_LIBRARY_PATH", "PYTHONHOME"}
_KEEP |= {"PYTHONPATH", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "WAZ_WHATSMEOW_OFFLINE"}
_KEEP |= {"GODEBUG", "GOGC", "GOMAXPROCS", "GOMEMLIMIT", "GOTRACEBACK"}
_KEEP |= {"RES_OPTIONS", "LOCALDOMAIN", "HOSTALIASES"}
_KEEP |= {v for p in ("HTTP", "HTTPS", "NO", "ALL") for v in (f"{p}_PROXY", f"{p.lower()}_proxy")}


def host_env(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in environ.items() if k in _KEEP or k.startswith("LC_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    return env
