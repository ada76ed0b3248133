"""Thousands of generated and mutated frames at a live daemon: every frame is answered with an
error, nothing in the store changes, and valid requests are still served afterwards."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.conftest import Raw, TestDaemon, request
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client

COMMANDS = [
    "ping", "daemon.status", "instance.create", "instance.list", "instance.get",
    "instance.start", "instance.stop", "instance.delete", "instance.pair", "message.send",
    "message.get", "message.cancel", "queue.status", "queue.list", "queue.retry",
    "queue.purge", "sim.fault", "token.create", "token.revoke", "no.such",
]  # fmt: skip
BAD_TOKEN = "waz_" + "A" * 43  # well-formed, never issued: every mutation stays unauthorized

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
arg_names = st.sampled_from(
    ["instance_id", "to", "text", "media", "message_id", "ttl", "limit", "status", "tenant", "x"]
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "v": st.one_of(st.just(1), values),
        "id": st.one_of(st.integers(0, 1000), st.text(max_size=10), values),
        "cmd": st.one_of(st.sampled_from(COMMANDS), values),
        "token": st.one_of(st.just(BAD_TOKEN), st.none(), st.text(max_size=60), values),
        "args": st.one_of(st.dictionaries(arg_names, values, max_size=4), values),
        "extra": values,
    },
)
valid_shaped = st.builds(
    lambda cmd, args, rid: request(cmd, BAD_TOKEN, args, rid),
    st.sampled_from(COMMANDS),
    st.dictionaries(arg_names, values, max_size=4),
    st.integers(0, 10**6),
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Byte-level damage to a well-formed frame: what a buggy client or a bad link sends."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        i = rng.randrange(len(out))
        op = rng.randrange(5)
        if op == 0:
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            del out[i:]
        elif op == 2:
            out[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            out += out[i:]
        else:
            out[i] = rng.choice([0xC1, 0xDF, 0xDD, 0xFF, 0x00, 0x91])  # odd headers
    return bytes(out)


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


seeds = st.one_of(
    st.builds(pack, envelopes), valid_shaped, st.builds(pack, values), st.binary(max_size=200)
)
MUTANTS = 20


def db_dump(path: Path) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [(t, sorted(map(repr, conn.execute(f"SELECT * FROM {t}")))) for t in sorted(tables)]
    finally:
        conn.close()


def test_fuzz_live_daemon(start_daemon: Callable[..., TestDaemon]) -> None:
    d = start_daemon()
    tok = read_admin_token(d.cfg.state_dir)
    with Client(d.cfg.control_endpoint, tok) as admin:
        admin.instance_create("sim", "fz1")
        admin.message_send("fz1", "5511999999999", text="before")
    d.store.flush()
    before = db_dump(d.cfg.db_path)
    raw = Raw(d.cfg.control_endpoint)
    sent = 0

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(seed=seeds, extra=st.lists(st.binary(max_size=20), max_size=2), n=st.integers(0, 2**32))
    def run(seed: bytes, extra: list[bytes], n: int) -> None:
        nonlocal sent
        rng = random.Random(n)
        batch = [[seed, *extra]] + [[mutate(seed, rng)] for _ in range(MUTANTS)]
        for msg in batch:
            raw.send(*msg)
        for _ in batch:
            reply = raw.recv(timeout=5)
            assert reply is not None, "a frame went unanswered"
            assert reply["ok"] is False and reply["error"]["code"] in {
                "bad_request", "unsupported_version", "unknown_command", "unauthorized",
            }  # fmt: skip
        sent += len(batch)

    run()
    raw.close()
    assert sent >= 1000
    with Client(d.cfg.control_endpoint, tok) as admin:
        assert admin.ping()["pong"]
        assert [i["instance_id"] for i in admin.instance_list()] == ["fz1"]
    d.store.flush()
    assert db_dump(d.cfg.db_path) == before
    stats = d.control.stats()
    assert stats["errors"] >= sent and stats["dropped"] == 0
