"""Fetch a client-given URL to a temporary file, once, within limits and without SSRF.

Standard library only (http.client + socket + ssl) rather than httpx (installed, as a neonize
dependency): pinning the connection to the address we checked needs our own socket, which
http.client takes as it is (`conn.sock = ...`) while sending the URL's host in `Host:` and as the
TLS server name. httpx would need a custom transport to do the same.

- http and https only; redirects followed by hand (at most `max_redirects`), each hop checked
  again from scratch.
- Every connection: resolve once, check each address with ssrf.py, connect to a checked address.
- A size cap per kind: `max_bytes` for image/video/audio/sticker, `max_document_bytes` for
  documents. Content-Length over the cap is refused before the body is read; without it the
  stream stops at the first byte over the cap.
- `connect_timeout` per connect, `timeout` for the whole fetch (every read waits only what is
  left of it). Both in real seconds.
- The body streams to a temporary file (memory stays bounded however many fetches run at once);
  size and sha256 are computed on the way.

Errors are `FetchError`s with `permanent` set when trying again cannot help (a refused address,
a 4xx, a file over the cap, a bad URL); a timeout, a connection error or a 5xx are transient.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from waz_actors.net.mime import SNIFF_BYTES, choose_mime, declared_kind, kind_of
from waz_actors.net.ssrf import Refused, check_address

MIB = 1024 * 1024
_REDIRECTS = {301, 302, 303, 307, 308}
_TRANSIENT_STATUS = {408, 425, 429}
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 16 * MIB  # image, video, audio, sticker
    max_document_bytes: int = 100 * MIB
    connect_timeout: float = 10.0  # real seconds
    timeout: float = 120.0  # real seconds for the whole fetch, redirects included
    max_redirects: int = 5
    allow_private: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None) -> Limits:
        """From `as_dict()` (the driver host gets its limits with each send)."""
        if not m:
            return cls()
        known = {k: m[k] for k in cls.__dataclass_fields__ if k in m}
        return cls(**known)


class FetchError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Fetched:
    path: str  # the temporary file; the caller removes it (`discard`)
    url: str  # after redirects
    mime: str
    kind: str
    size: int
    sha256: str

    def info(self) -> dict[str, Any]:
        """What message.get shows of the fetched file."""
        return {"mime": self.mime, "kind": self.kind, "size": self.size, "sha256": self.sha256}

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def fetch(
    url: str, limits: Limits, *, mime: str | None = None, tmp_dir: str | None = None
) -> Fetched:
    """Fetch `url` into a temporary file; `mime` is the client's declared type, if any."""
    deadline = time.monotonic() + limits.timeout
    promised = declared_kind(mime)
    cap = limits.max_document_bytes if promised in (None, "document") else limits.max_bytes
    current = url
    try:
        for _ in range(limits.max_redirects + 1):
            conn, sock, resp = _get(current, limits, deadline)
            try:
                if resp.status in _REDIRECTS:
                    location = resp.getheader("Location")
                    if not location:
                        raise FetchError(f"HTTP {resp.status} without Location", permanent=True)
                    current = urljoin(current, location)
                    continue
                _check_status(resp, current)
                length = resp.getheader("Content-Length")
                if length and length.strip().isdigit() and int(length) > cap:
                    raise FetchError(_too_large(cap, promised), permanent=True)
                return _stream(resp, sock, current, cap, deadline, mime, limits, tmp_dir)
            finally:
                resp.close()
                conn.close()
                sock.close()
        raise FetchError(f"more than {limits.max_redirects} redirects", permanent=True)
    except FetchError:
        raise
    except ssl.SSLCertVerificationError as e:
        raise FetchError(f"TLS certificate refused: {e.verify_message}", permanent=True) from None
    except TimeoutError:
        raise FetchError(f"timed out fetching from {_where(current)}", permanent=False) from None
    except (OSError, http.client.HTTPException) as e:
        why = str(e) or type(e).__name__
        raise FetchError(f"fetch from {_where(current)} failed: {why}", permanent=False) from None


def _where(url: str) -> str:
    """Scheme, host and port: never the path or query, which may carry a client's secret."""
    try:
        p = urlsplit(url)
        return f"{p.scheme}://{p.netloc.rpartition('@')[2]}"
    except ValueError:
        return "a bad URL"


def _too_large(cap: int, promised: str | None) -> str:
    key = "max_document_bytes" if promised in (None, "document") else "max_bytes"
    return f"file too large: over {cap} bytes (media.{key})"


def _get(
    url: str, limits: Limits, deadline: float
) -> tuple[http.client.HTTPConnection, socket.socket, http.client.HTTPResponse]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise FetchError(f"bad media URL: {e}", permanent=True) from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(
            f"only http and https URLs are fetched, not {parts.scheme!r}", permanent=True
        )
    host = parts.hostname
    if not host:
        raise FetchError("bad media URL: no host", permanent=True)
    https = parts.scheme == "https"
    port = port or (443 if https else 80)
    sock = _connect(host, port, limits, deadline)
    try:
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
        conn = cls(host, port)
        conn.sock = sock  # pinned: http.client sends on it and never connects by itself
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request(
            "GET", target, headers={"User-Agent": "waz-actors", "Accept-Encoding": "identity"}
        )
        return conn, sock, conn.getresponse()
    except BaseException:
        sock.close()
        raise


def _connect(host: str, port: int, limits: Limits, deadline: float) -> socket.socket:
    """Resolve once; connect only to an address the rule allows (no rebinding between them)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise FetchError(f"cannot resolve {host}: {e.strerror or e}", permanent=False) from None
    refused: Refused | None = None
    failed: OSError | None = None
    for family, kind, proto, _, addr in infos:
        try:
            check_address(str(addr[0]), allow_private=limits.allow_private)
        except Refused as e:
            refused = e
            continue
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(max(0.001, min(limits.connect_timeout, _left(deadline))))
            sock.connect(addr)
            sock.settimeout(max(0.001, _left(deadline)))
            return sock
        except OSError as e:
            sock.close()
            failed = e
    if failed is None and refused is not None:
        raise FetchError(f"{host}: {refused}", permanent=True)
    if isinstance(failed, TimeoutError):
        raise FetchError(f"timed out connecting to {host}:{port}", permanent=False)
    why = (failed.strerror or str(failed)) if failed else "no address"
    raise FetchError(f"cannot connect to {host}:{port}: {why}", permanent=False)


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


def _check_status(resp: http.client.HTTPResponse, url: str) -> None:
    status = resp.status
    if status == 200:
        return
    what = f"HTTP {status} {resp.reason} from {_where(url)}".replace("  ", " ")
    transient = status >= 500 or status in _TRANSIENT_STATUS
    raise FetchError(what, permanent=not transient)


def _stream(
    resp: http.client.HTTPResponse,
    sock: socket.socket,
    url: str,
    cap: int,
    deadline: float,
    declared: str | None,
    limits: Limits,
    tmp_dir: str | None,
) -> Fetched:
    fd, path = tempfile.mkstemp(prefix="waz-media-", dir=tmp_dir)
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with os.fdopen(fd, "wb") as f:
            while True:
                left = _left(deadline)
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)  # each read waits only what is left of the whole fetch
                chunk = resp.read1(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > cap:
                    raise FetchError(_too_large(cap, declared_kind(declared)), permanent=True)
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                digest.update(chunk)
                f.write(chunk)
        if resp.length:  # Content-Length promised more than arrived
            raise FetchError(f"connection closed early by {_where(url)}", permanent=False)
        mime = choose_mime(declared, head, url)
        kind = kind_of(mime)
        if kind != "document" and size > limits.max_bytes:
            raise FetchError(_too_large(limits.max_bytes, kind), permanent=True)
        return Fetched(path, url, mime, kind, size, digest.hexdigest())
    except BaseException:
        os.unlink(path)
        raise


__all__ = ["MIB", "FetchError", "Fetched", "Limits", "fetch"]
