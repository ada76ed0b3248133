"""One webhook POST over aiohttp, under the SSRF rule of net/ssrf.py.

The host is resolved here, every address is judged by the rule, and the request goes to a
checked address (the URL's host replaced by it; the Host header and TLS SNI keep the name), so a
name that resolves somewhere else between the check and the connection (DNS rebinding) never
reaches a refused address. Redirects are not followed: a 3xx is an answer like any other non-2xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import aiohttp
from yarl import URL

from waz_actors.net.ssrf import refusal
from waz_actors.policy.webhooks import BODY_PREFIX


@dataclass(frozen=True)
class Answer:
    code: int | None  # None: no HTTP answer (see error)
    body: bytes = b""
    retry_after: str | None = None
    error: str | None = None


class TargetRefused(ValueError):
    """The URL leads to an address webhooks must not reach."""


def check_url(url: str) -> URL:
    """A webhook URL's shape: http or https, a host; raises ValueError."""
    try:
        parsed = URL(url)
    except Exception as e:
        raise ValueError(f"not a URL: {e}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("expected an http:// or https:// URL with a host")
    if parsed.user or parsed.password:
        raise ValueError("credentials in the URL are not allowed (use the signature)")
    return parsed


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def pick_address(host: str, addresses: list[str], *, allow_private: bool) -> str:
    """The first address the rule allows; TargetRefused when none is."""
    why = "unresolvable"
    for address in addresses:
        refused = None if allow_private else refusal(address)
        if refused is None:
            return address
        why = refused
    raise TargetRefused(f"{host} is {why}: refused (webhooks.allow_private_targets is off)")


async def resolve_checked(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to, resolved now (every connection) and checked."""
    literal = _literal(host)
    if literal is not None:
        return pick_address(host, [literal], allow_private=allow_private)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host}: {e.strerror or e}") from None
    return pick_address(host, [str(i[4][0]) for i in infos], allow_private=allow_private)


def check_target(url: str, *, allow_private: bool) -> None:
    """webhook.create's check (blocking: a pool thread): the URL's shape, and the address of a
    literal IP or of a name that resolves now. A name that does not resolve yet is accepted:
    every delivery resolves and checks again."""
    parsed = check_url(url)
    host = str(parsed.host)  # check_url: there is one
    literal = _literal(host)
    if literal is not None:
        pick_address(host, [literal], allow_private=allow_private)
        return
    try:
        infos = socket.getaddrinfo(host, _port(parsed), type=socket.SOCK_STREAM)
    except OSError:
        return
    pick_address(host, [str(i[4][0]) for i in infos], allow_private=allow_private)


def _port(url: URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    raw: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout: float,
) -> Answer:
    """POST `raw`; never raises for a network failure (it is an Answer without a code)."""
    try:
        parsed = check_url(url)
        host = parsed.host
        assert host is not None  # check_url
        port = _port(parsed)
        address = await resolve_checked(host, port, allow_private=allow_private)
        where = f"[{address}]" if ":" in address else address
        target = URL(f"{parsed.scheme}://{where}:{port}{parsed.raw_path_qs}", encoded=True)
        sent = dict(headers)
        sent["Host"] = host if parsed.explicit_port is None else f"{host}:{port}"
        # TLS: the certificate is checked against the name, not the address connected to
        sni = host if parsed.scheme == "https" else None
        async with (
            asyncio.timeout(timeout),
            session.post(
                target, data=raw, headers=sent, allow_redirects=False, server_hostname=sni
            ) as resp,
        ):
            body = await resp.content.read(BODY_PREFIX)  # a short prefix, never a huge answer
        return Answer(resp.status, body[:BODY_PREFIX], resp.headers.get("Retry-After"))
    except TargetRefused as e:
        return Answer(None, error=str(e))
    except TimeoutError:
        return Answer(None, error=f"timed out after {timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as e:
        return Answer(None, error=f"{type(e).__name__}: {e}"[:200])


def session(concurrency: int, connect_timeout: float, timeout: float) -> aiohttp.ClientSession:
    """The worker's one session: a pool of at most `concurrency` keep-alive connections (to
    checked addresses: no DNS cache of aiohttp's own, every name is resolved by `post`),
    redirects and proxies never followed, answers not decompressed."""
    connector = aiohttp.TCPConnector(limit=concurrency, use_dns_cache=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout, connect=connect_timeout),
        auto_decompress=False,
        trust_env=False,
    )


__all__ = ["Answer", "TargetRefused", "check_target", "check_url", "post", "session"]
