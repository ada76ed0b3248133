"""The one rule for which addresses a client-given URL may reach (no SSRF).

A URL a client hands us is fetched from inside the operator's network, so it must not reach what
only that network can: loopback, private ranges, link-local (with the cloud metadata services),
carrier-grade NAT, multicast, reserved and unspecified addresses. The rule is applied to the
address actually connected to (fetch.py resolves once and connects to the checked address), never
to the host name, so DNS rebinding has no window. Pure functions: tested directly.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Named first: the reason says "metadata" rather than the range it falls in.
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}

_BLOCKED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)


def parse_ip(value: str) -> IPAddress:
    """An address as getaddrinfo gives it (an IPv6 one may carry a %zone)."""
    return ipaddress.ip_address(value.split("%", 1)[0])


def refusal(address: str | IPAddress) -> str | None:
    """Why this address must not be fetched from, or None when it may be."""
    ip = parse_ip(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d) is
        # judged as the IPv4 address it reaches.
        inner = ip.ipv4_mapped
        if inner is None and ip in ipaddress.ip_network("64:ff9b::/96"):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return refusal(inner)
    if ip in METADATA:
        return "cloud metadata"
    for net, why in _BLOCKED:
        if ip.version == net.version and ip in net:
            return why
    return None


def check_address(address: str | IPAddress, *, allow_private: bool = False) -> None:
    """Raise `Refused` unless the address may be connected to."""
    if allow_private:
        return
    why = refusal(address)
    if why is not None:
        raise Refused(f"address {address} is {why}: refused (media.allow_private_urls is off)")


class Refused(ValueError):
    """The URL leads to an address this daemon must not reach."""


__all__ = ["METADATA", "Refused", "check_address", "parse_ip", "refusal"]
