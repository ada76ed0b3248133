"""Claims on the real PostgreSQL: one holder per key among racing nodes, a killed holder's
keys taken over within the ttl, a partitioned holder lets go before anyone may take its keys,
and a stale epoch refused by `waz_claim_fence`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import psycopg
import pytest

from tests.cluster.node_util import FAST
from tests.cluster.tcp_proxy import TcpProxy
from tests.waiting import wait_until
from waz_actors.cluster.claims import Claims, ClaimStore
from waz_actors.cluster.lease_policy import LeaseTiming
from waz_actors.cluster.leases import is_stale_epoch

REPO = Path(__file__).resolve().parents[2]


def claims(url: str, node_id: str) -> Claims:
    store = ClaimStore(url, node_id, FAST.ttl, timeout=1.0)
    store.migrate()
    return Claims(store, FAST)


def test_racing_nodes_get_each_key_once(pg_url: str) -> None:
    nodes = [claims(pg_url, f"n{k}") for k in range(3)]
    keys = [f"campaign:c{k}" for k in range(40)]
    got: dict[str, list[str]] = {k: [] for k in keys}
    lock = threading.Lock()
    barrier = threading.Barrier(len(nodes))

    def race(c: Claims) -> None:
        barrier.wait()
        for key in keys:
            if c.try_claim(key):
                with lock:
                    got[key].append(c.node_id)

    threads = [threading.Thread(target=race, args=(c,)) for c in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(len(owners) == 1 for owners in got.values()), got
    for c in nodes:
        assert sorted(c.held()) == sorted(k for k, o in got.items() if o == [c.node_id])
    assert nodes[0].unclaimed([*keys, "campaign:free"]) == ["campaign:free"]
    for c in nodes:
        c.close()
    assert len(nodes[0].unclaimed(keys)) == len(keys)  # close gave everything back


def test_claims_stay_held_while_renewed_and_a_clean_close_frees_them_at_once(
    pg_url: str,
) -> None:
    a, b = claims(pg_url, "a"), claims(pg_url, "b")
    a.start()
    try:
        assert a.try_claim("webhook:w1")
        deadline = time.monotonic() + 2 * FAST.ttl  # well past one ttl: renewals keep it
        while time.monotonic() < deadline:
            assert not b.try_claim("webhook:w1")
            assert a.holds("webhook:w1")
            time.sleep(0.1)
        assert a.lost == 0
        t0 = time.monotonic()
        a.close()
        assert b.try_claim("webhook:w1")
        assert time.monotonic() - t0 < 1.0
    finally:
        a.stop()
        b.close()


_HOLDER = """
import sys, time
from waz_actors.cluster.claims import Claims, ClaimStore
from waz_actors.cluster.lease_policy import LeaseTiming
from waz_actors.cluster.lease_policy import LeaseTiming
t = LeaseTiming(ttl=1.2, renew_every=0.2, margin=0.5)
c = Claims(ClaimStore(sys.argv[1], "victim", t.ttl, timeout=1.0), t)
c.start()
assert c.try_claim("campaign:k1") and c.try_claim("campaign:k2")
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holders_keys_are_taken_within_the_ttl(pg_url: str) -> None:
    survivor = claims(pg_url, "survivor")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, pg_url], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        time.sleep(FAST.ttl)  # a few renew rounds: the claims are alive past their first ttl
        assert not survivor.try_claim("campaign:k1")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        killed = time.monotonic()
        assert not survivor.try_claim("campaign:k1")  # not before its expiry
        wait_until(
            lambda: survivor.try_claim("campaign:k1") and survivor.try_claim("campaign:k2"),
            timeout=FAST.ttl + 3,
            what="the survivor takes the killed holder's keys",
        )
        # The last renew was at most renew_every before the kill; expiry is ttl after it.
        assert time.monotonic() - killed <= FAST.ttl + 0.5
        assert survivor.epoch("campaign:k1") == 2
    finally:
        if proc.poll() is None:
            proc.kill()
        survivor.close()


def test_a_partitioned_holder_lets_go_before_another_node_may_take_its_key(
    pg_url: str,
) -> None:
    host = urllib.parse.urlsplit(pg_url)
    proxy = TcpProxy(host.hostname or "127.0.0.1", host.port or 5432)
    a = claims(proxy.url(pg_url), "a")
    b = claims(pg_url, "b")
    lost_at: dict[str, float] = {}
    a.watch("campaign:", lambda key: lost_at.setdefault(key, time.monotonic()))
    a.start()
    try:
        assert a.try_claim("campaign:c1")
        time.sleep(3 * FAST.renew_every)  # renewed a few times
        proxy.partition()
        cut = time.monotonic()
        taken_at = None
        while time.monotonic() - cut < FAST.ttl + 3:
            if b.try_claim("campaign:c1"):
                taken_at = time.monotonic()
                break
            time.sleep(0.02)
        assert taken_at is not None, "b never got the key"
        assert "campaign:c1" in lost_at, "a was never told it lost the key"
        assert lost_at["campaign:c1"] < taken_at  # a stopped first
        assert lost_at["campaign:c1"] - cut <= FAST.ttl - FAST.margin + 0.3
        assert not a.holds("campaign:c1") and a.lost == 1
        proxy.heal()
        wait_until(lambda: a.held() == {}, timeout=5, what="a holds nothing after healing")
        assert not a.try_claim("campaign:c1")  # b's now
    finally:
        proxy.close()
        a.stop()
        b.close()


def test_a_write_with_a_stale_claim_epoch_is_refused(pg_url: str) -> None:
    a, b = claims(pg_url, "a"), claims(pg_url, "b")
    assert a.try_claim("campaign:c1")
    old = a.epoch("campaign:c1")
    assert old is not None
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("SELECT waz_claim_fence(%s, %s)", ("campaign:c1", old))  # current: passes
        a.release("campaign:c1")
        assert b.try_claim("campaign:c1")
        for key, epoch in (("campaign:c1", old), ("campaign:none", 1)):
            with pytest.raises(psycopg.Error) as e:
                c.execute("SELECT waz_claim_fence(%s, %s)", (key, epoch))
            assert is_stale_epoch(e.value)
        c.execute("SELECT waz_claim_fence(%s, %s)", ("campaign:c1", b.epoch("campaign:c1")))
    b.close()


SLOW = LeaseTiming(ttl=30.0, renew_every=0.5, margin=5.0, takeover_delay=0.1)


def test_a_successor_on_the_same_node_takes_the_claims_back_at_once(pg_url: str) -> None:
    """The delivery worker started again by its daemon (the old one waited for: dead) holds
    its node's webhook claims at once, with new epochs, not after the ttl (30 s here); only
    that node's keys under the prefix; the dead holder's epoch is refused from then on."""
    store = ClaimStore(pg_url, "n1", SLOW.ttl, timeout=2.0)
    store.migrate()
    old = Claims(store, SLOW)
    assert old.try_claim("webhook:wh_a") and old.try_claim("webhook:wh_b")
    daemon = Claims(ClaimStore(pg_url, "n1", SLOW.ttl), SLOW)  # the daemon's own, same node
    assert daemon.try_claim("campaign:c1")
    n2 = Claims(ClaimStore(pg_url, "n2", SLOW.ttl), SLOW)
    assert n2.try_claim("webhook:wh_n2")
    epochs = {k: old.epoch(k) for k in ("webhook:wh_a", "webhook:wh_b")}
    # the old worker is killed: nothing given back
    fresh = Claims(ClaimStore(pg_url, "n1", SLOW.ttl), SLOW)
    assert not fresh.try_claim("webhook:wh_a")  # an ordinary claim waits for the expiry
    assert fresh.take_back("webhook:") == ["webhook:wh_a", "webhook:wh_b"]
    for key, epoch in epochs.items():
        assert fresh.holds(key) and fresh.epoch(key) == (epoch or 0) + 1
    assert not fresh.holds("campaign:c1") and not fresh.holds("webhook:wh_n2")
    assert daemon.holds("campaign:c1") and daemon.epoch("campaign:c1") == 1
    assert not n2.try_claim("webhook:wh_a")  # still one holder
    old.renew()  # had the old one lived on, its first renew loses them
    assert not old.holds("webhook:wh_a") and old.lost == 2
    fresh.renew()
    assert fresh.holds("webhook:wh_a") and fresh.holds("webhook:wh_b")
    daemon.renew()
    assert daemon.holds("campaign:c1")
    for c in (fresh, daemon, n2):
        c.close()
    old.db.close()
