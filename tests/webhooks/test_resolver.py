"""The SSRF rule at connection time: the session's resolver judges every address of every NEW
connection, so a name that resolves to a private address later (DNS rebinding) is refused then,
while a kept-alive connection is reused without a lookup."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.webhooks.receiver import Receiver
from waz_actors.net import webhook_http
from waz_actors.net.webhook_http import CheckedResolver, TargetRefused


class Scripted(AbstractResolver):
    """A name server whose answers change: the next list of addresses at each lookup."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        pass


def _resolve(resolver: AbstractResolver, host: str = "hook.example") -> list[str]:
    async def go() -> list[str]:
        return [r["host"] for r in await resolver.resolve(host, 443)]

    return asyncio.run(go())


def test_a_name_rebound_to_a_private_address_is_refused_at_the_next_lookup() -> None:
    inner = Scripted(["93.184.216.34"], ["10.0.0.7"], ["169.254.169.254"], ["::1", "127.0.0.1"])
    resolver = CheckedResolver(inner)
    assert _resolve(resolver) == ["93.184.216.34"]
    for why in ("private", "cloud metadata", "loopback"):
        with pytest.raises(TargetRefused, match=f"hook.example is {why}: refused"):
            _resolve(resolver)
    assert len(inner.lookups) == 4


def test_only_the_allowed_addresses_of_a_name_are_connected_to() -> None:
    resolver = CheckedResolver(Scripted(["10.1.1.1", "93.184.216.34", "fe80::1", "2606:4700::1"]))
    assert _resolve(resolver) == ["93.184.216.34", "2606:4700::1"]
    with pytest.raises(TargetRefused, match="unresolvable"):
        _resolve(CheckedResolver(Scripted([])))


def test_a_new_connection_is_judged_again_a_kept_alive_one_is_not_looked_up(
    receiver: Receiver,
) -> None:
    """A real session and receiver; only the name server is scripted, and the rule tells two
    loopback addresses apart (127.0.0.2 stands for a private address: the receiver listens on
    127.0.0.1 only, so the refusal must come before any connection)."""
    inner = Scripted(["127.0.0.1"], ["127.0.0.2"])
    resolver = CheckedResolver(inner, rule=lambda a: "private" if a == "127.0.0.2" else None)
    url = f"http://hook.test:{receiver.port}/hook"
    closing = {"n": 0}

    def respond(hit: object) -> tuple[int, dict[str, str]]:
        closing["n"] += 1  # the second answer ends the connection: the third needs a new one
        return 200, {"Connection": "close"} if closing["n"] == 2 else {}

    receiver.respond = respond

    async def go() -> list[webhook_http.Answer]:
        async with webhook_http.session(
            4, 5.0, 15.0, allow_private=False, resolver=resolver
        ) as session:
            answers = []
            for i in range(3):
                answers.append(
                    await webhook_http.post(session, url, b'{"n": %d}' % i, {}, allow_private=False)
                )
                if i == 1:
                    assert len(inner.lookups) == 1  # kept alive: no lookup per request
            return answers

    first, second, third = asyncio.run(go())
    assert (first.code, second.code) == (200, 200)
    assert [h.headers["host"] for h in receiver.hits] == [f"hook.test:{receiver.port}"] * 2
    assert inner.lookups == ["hook.test", "hook.test"]  # the new connection looked up again
    assert third.code is None and third.error is not None
    assert "hook.test is private: refused" in third.error
    assert len(receiver.hits) == 2  # the rebound name reached nothing


def test_a_literal_ip_is_judged_with_the_url(receiver: Receiver) -> None:
    """aiohttp connects to a literal IP without a resolver: the URL check refuses it."""
    inner = Scripted(["127.0.0.1"])

    async def go() -> webhook_http.Answer:
        async with webhook_http.session(
            4, 5.0, 15.0, allow_private=False, resolver=CheckedResolver(inner)
        ) as session:
            return await webhook_http.post(session, receiver.url(), b"{}", {}, allow_private=False)

    answer = asyncio.run(go())
    assert answer.code is None and "127.0.0.1 is loopback: refused" in str(answer.error)
    assert receiver.hits == [] and inner.lookups == []
