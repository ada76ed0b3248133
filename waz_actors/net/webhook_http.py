"""One webhook POST over aiohttp, under the SSRF rule of net/ssrf.py.

The rule is applied where the address is chosen: the session's resolver (`CheckedResolver`)
judges every address a name resolves to and drops the refused ones, and the session keeps no DNS
cache, so every NEW connection resolves and is judged again (a name rebound to a private address
reaches nothing); a kept-alive connection is reused without a lookup, to the address already
judged. A literal IP never reaches a resolver (aiohttp connects to it as is), so it is judged
with the URL, once per webhook URL (`_target`'s cache). The request goes to the webhook's own
URL: the Host header, TLS SNI and the certificate check are aiohttp's, against the name.
Redirects are not followed: a 3xx is an answer like any other non-2xx.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
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


Rule = Callable[[str], str | None]  # why an address is refused, or None


class CheckedResolver(AbstractResolver):
    """The webhook session's resolver: a name's addresses, the refused ones left out;
    TargetRefused (no connection is made) when none is left. `inner` and `rule` are seams for
    the tests (a name that resolves elsewhere the second time, a rule that tells two loopback
    addresses apart)."""

    def __init__(self, inner: AbstractResolver | None = None, rule: Rule = refusal) -> None:
        self._inner = inner if inner is not None else ThreadedResolver()
        self._rule = rule

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [r for r in found if self._rule(r["host"]) is None]
        if not allowed:
            why = self._rule(found[0]["host"]) if found else "unresolvable"
            raise TargetRefused(f"{host} is {why}: refused (webhooks.allow_private_targets is off)")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@functools.lru_cache(maxsize=4096)
def _target(url: str, allow_private: bool) -> URL | TargetRefused:
    """A webhook URL parsed once (URLs are few and posted to again and again), its literal IP
    judged once; a refusal is kept as the value (lru_cache keeps no exception)."""
    parsed = check_url(url)
    literal = _literal(str(parsed.host))
    if literal is not None:
        try:
            pick_address(str(parsed.host), [literal], allow_private=allow_private)
        except TargetRefused as e:
            return e
    return parsed


def check_target(url: str, *, allow_private: bool) -> None:
    """webhook.create's check (blocking: a pool thread): the URL's shape, and the address of a
    literal IP or of a name that resolves now. A name that does not resolve yet is accepted:
    every new connection resolves and checks again."""
    parsed = check_url(url)
    host = str(parsed.host)  # check_url: there is one
    literal = _literal(host)
    if literal is not None:
        pick_address(host, [literal], allow_private=allow_private)
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return
    pick_address(host, [str(i[4][0]) for i in infos], allow_private=allow_private)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    raw: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
) -> Answer:
    """POST `raw` on a `session()`; never raises for a network failure (it is an Answer without
    a code). `allow_private` must be the session's (it judges the literal IPs)."""
    try:
        target = _target(url, allow_private)
        if isinstance(target, TargetRefused):
            return Answer(None, error=str(target))
        async with session.post(target, data=raw, headers=headers, allow_redirects=False) as resp:
            body = await resp.content.read(BODY_PREFIX)  # a short prefix, never a huge answer
        return Answer(resp.status, body[:BODY_PREFIX], resp.headers.get("Retry-After"))
    except TargetRefused as e:
        return Answer(None, error=str(e))
    except TimeoutError as e:
        # the session's own timeouts: aiohttp names a connect timeout; the total one is silent
        total = session.timeout.total
        return Answer(None, error=str(e)[:200] or f"timed out after {total:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as e:
        return Answer(None, error=f"{type(e).__name__}: {e}"[:200])


def session(
    concurrency: int,
    connect_timeout: float,
    timeout: float,
    *,
    allow_private: bool,
    resolver: AbstractResolver | None = None,  # the tests' seam
) -> aiohttp.ClientSession:
    """The worker's one session: a pool of at most `concurrency` keep-alive connections, each
    new one to an address `CheckedResolver` allowed (no DNS cache: the rule runs for every new
    connection), the one timeout (total and connect) on every request, redirects and proxies
    never followed, answers not decompressed."""
    if resolver is None:
        resolver = ThreadedResolver() if allow_private else CheckedResolver()
    connector = aiohttp.TCPConnector(limit=concurrency, use_dns_cache=False, resolver=resolver)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout, connect=connect_timeout),
        auto_decompress=False,
        trust_env=False,
    )


__all__ = [
    "Answer",
    "CheckedResolver",
    "TargetRefused",
    "check_target",
    "check_url",
    "post",
    "session",
]
