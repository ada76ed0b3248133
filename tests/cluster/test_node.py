"""Cluster nodes on the real local PostgreSQL (one schema per test), with real threads:
placement, drain, hand-over, self-fencing behind a partition, and never two owners at once."""

from __future__ import annotations

import random
import time
import urllib.parse

from tests.cluster.node_util import FAST, Runs, make_node
from tests.cluster.tcp_proxy import TcpProxy
from tests.waiting import wait_until
from waz_actors.cluster.leases import LeaseStore

IDS = [f"i{n:02d}" for n in range(30)]


def _counts(runs: Runs, nodes: list[str]) -> list[int]:
    return [len(runs.running(n)) for n in nodes]


def test_placement_spreads_instances_fairly_over_three_nodes(pg_url: str) -> None:
    runs = Runs()
    names = ["a", "b", "c"]
    nodes = [make_node(pg_url, n, runs, ids=IDS, rate=20.0)[0] for n in names]
    for n in nodes:
        n.start()
    try:
        # They start together, each taking at most its share at a bounded rate.
        wait_until(
            lambda: _counts(runs, names) == [10, 10, 10],
            timeout=20,
            what=lambda: f"a fair spread, got {_counts(runs, names)}",
        )
        assert runs.overlaps() == []
    finally:
        for n in nodes:
            n.kill()


def test_a_joining_node_gets_its_share_from_a_full_one(pg_url: str) -> None:
    runs = Runs()
    a, _ = make_node(pg_url, "a", runs, ids=IDS, rate=50.0)
    a.start()
    try:
        wait_until(lambda: len(runs.running("a")) == 30, timeout=10, what="a runs all")
        b, _ = make_node(pg_url, "b", runs, rate=50.0)
        b.start()
        try:
            wait_until(
                lambda: _counts(runs, ["a", "b"]) == [15, 15],
                timeout=20,
                what=lambda: f"a rebalance, got {_counts(runs, ['a', 'b'])}",
            )
            assert runs.overlaps() == []
            assert b.stats.acquired >= 15
        finally:
            b.kill()
    finally:
        a.kill()


def test_drain_hands_every_lease_over_gradually(pg_url: str) -> None:
    runs = Runs()
    a, ha = make_node(pg_url, "a", runs, ids=IDS, rate=10.0)
    b, _ = make_node(pg_url, "b", runs, rate=10.0)
    a.start()
    b.start()
    try:
        wait_until(lambda: _counts(runs, ["a", "b"]) == [15, 15], timeout=20, what="spread")
        admin = LeaseStore(pg_url, "admin", FAST.ttl)
        assert admin.set_draining("a")
        t0 = time.monotonic()
        wait_until(
            lambda: _counts(runs, ["a", "b"]) == [0, 30],
            timeout=20,
            what=lambda: f"a drained, got {_counts(runs, ['a', 'b'])}",
        )
        assert time.monotonic() - t0 > 0.5  # 15 at 10 a second: gradual, not all at once
        assert all("draining" in why for _, why in ha.reasons)
        assert {x.owner for x in admin.leases()} == {"b"}
        assert runs.overlaps() == []
        admin.close()
    finally:
        a.kill()
        b.kill()


def test_sigterm_hand_over_releases_leases_and_another_node_takes_them_at_once(
    pg_url: str,
) -> None:
    runs = Runs()
    slow = FAST.__class__(ttl=30.0, renew_every=0.2, margin=5.0, takeover_delay=10.0)
    a, ha = make_node(pg_url, "a", runs, ids=IDS, timing=slow)
    a.start()
    wait_until(lambda: len(runs.running("a")) == 30, timeout=10, what="a runs all")
    b, _ = make_node(pg_url, "b", runs, timing=slow)
    # SIGTERM on a: stop taking, close every session (the daemon's StopAll), release.
    a.halt()
    ha.crash()  # all sessions closed, as StopAll does
    t0 = time.monotonic()
    assert a.hand_over() == 30
    b.start()
    try:
        # Released, not expired: b starts them at once (no ttl wait, no takeover delay).
        wait_until(lambda: len(runs.running("b")) == 30, timeout=10, what="b took over")
        assert time.monotonic() - t0 < slow.ttl / 3
        assert runs.overlaps() == []
        admin = LeaseStore(pg_url, "admin", 30)
        assert [n.node_id for n in admin.nodes()] == ["b"]
        admin.close()
    finally:
        b.kill()


def test_a_write_refused_by_the_database_closes_that_session_only(pg_url: str) -> None:
    """Store.fence_writes' on_stale: the database refused a write under an epoch."""
    runs = Runs()
    a, ha = make_node(pg_url, "a", runs, ids=IDS[:4])
    a.start()
    try:
        wait_until(lambda: len(runs.running("a")) == 4, timeout=10, what="a runs all")
        epoch = a.epoch("i00")
        assert epoch is not None
        a.refused("i00", epoch - 1)  # a late write of an older session: nothing to do
        a.refused("i00", None)
        assert a.epoch("i00") == epoch and "i00" in runs.running("a")
        a.refused("i00", epoch)
        assert a.epoch("i00") is None and a.stats.refused == 1
        assert runs.running("a") == {"i01", "i02", "i03"}
        assert ha.reasons == [("i00", "fenced out: the database refused a write")]
        # Not released (its lease may be another node's now): taken again only once it
        # expired, with a new epoch, like any lease lost.
        wait_until(lambda: a.epoch("i00") == epoch + 1, timeout=10, what="i00 taken back")
        assert runs.overlaps() == []
    finally:
        a.kill()


def test_leases_are_released_only_after_the_store_committed(pg_url: str) -> None:
    runs = Runs()
    a, ha = make_node(pg_url, "a", runs, ids=IDS[:3])
    admin = LeaseStore(pg_url, "admin", 30)
    owners_at_flush: list[set[str | None]] = []
    a.before_release = lambda: owners_at_flush.append({r.owner for r in admin.leases()})
    a.start()
    try:
        wait_until(lambda: len(runs.running("a")) == 3, timeout=10, what="a runs all")
        a.halt()
        ha.crash()
        assert a.hand_over() == 3
        assert owners_at_flush == [{"a"}]  # flushed while every lease was still held
        assert {r.owner for r in admin.leases()} == {None}
    finally:
        admin.close()


def test_a_partitioned_node_fences_before_its_leases_expire(pg_url: str) -> None:
    host = urllib.parse.urlsplit(pg_url)
    proxy = TcpProxy(host.hostname or "127.0.0.1", host.port or 5432)
    runs = Runs()
    a, ha = make_node(proxy.url(pg_url), "a", runs, ids=IDS[:5])
    a.start()
    b = None
    try:
        wait_until(lambda: len(runs.running("a")) == 5, timeout=10, what="a runs all")
        b, _ = make_node(pg_url, "b", runs)
        b.start()
        proxy.partition()
        t_cut = time.monotonic()
        wait_until(lambda: not runs.running("a"), timeout=10, what="a fenced")
        fenced_after = time.monotonic() - t_cut
        assert a.stats.fenced == 5
        assert all(why.startswith("fenced") for _, why in ha.reasons)
        # Fenced no later than ttl - margin after the last good renew (<= cut time).
        assert fenced_after <= FAST.ttl - FAST.margin + 0.3
        wait_until(lambda: len(runs.running("b")) == 5, timeout=10, what="b took over")
        assert runs.overlaps() == []
        # The database confirms b's epochs are newer than a's.
        admin = LeaseStore(pg_url, "admin", 30)
        assert {x.owner for x in admin.leases()} == {"b"}
        assert {x.epoch for x in admin.leases()} == {2}
        admin.close()
    finally:
        proxy.close()
        a.kill()
        if b is not None:
            b.kill()


def test_two_nodes_never_run_the_same_instance_under_random_kills_and_partitions(
    pg_url: str,
) -> None:
    """Property style: four nodes, each behind its own proxy; for a few seconds a seeded random
    schedule kills nodes (restarting them under the same id), partitions and heals them. At
    no moment do two nodes run the same instance, and in the end every instance runs."""
    rng = random.Random(16)
    host = urllib.parse.urlsplit(pg_url)
    ids = [f"p{n:02d}" for n in range(24)]
    runs = Runs()
    names = ["n1", "n2", "n3", "n4"]
    proxies = {n: TcpProxy(host.hostname or "127.0.0.1", host.port or 5432) for n in names}
    live = {}
    for n in names:
        live[n] = make_node(proxies[n].url(pg_url), n, runs, ids=ids)
        live[n][0].start()
    try:
        end = time.monotonic() + 6.0
        while time.monotonic() < end:
            victim = rng.choice(names)
            node, hooks = live[victim]
            action = rng.choice(["kill", "partition", "heal", "heal", "nothing"])
            if action == "kill":
                hooks.crash()
                node.kill()
                proxies[victim].close()
                proxies[victim] = TcpProxy(host.hostname or "127.0.0.1", host.port or 5432)
                live[victim] = make_node(proxies[victim].url(pg_url), victim, runs)
                live[victim][0].start()
            elif action == "partition":
                proxies[victim].partition()
            elif action == "heal":
                proxies[victim].heal()
            assert runs.overlaps() == []
            time.sleep(rng.uniform(0.05, 0.4))  # the schedule itself, not a wait
        for p in proxies.values():
            p.heal()

        def all_run() -> bool:
            with runs.lock:
                return {i for (_, i) in runs.open} == set(ids)

        wait_until(all_run, timeout=20, what="every instance runs somewhere")
        assert runs.overlaps() == []
    finally:
        for n in names:
            live[n][0].kill()
            proxies[n].close()


def test_a_node_catches_up_at_its_acquire_rate_not_one_budget_per_renew_round(
    pg_url: str,
) -> None:
    """60 instances at 20 leases a second: three seconds, although a renew round comes only
    every 10 s (before, a node took one budget per round: 60 instances took 30 s)."""
    runs = Runs()
    slow_rounds = FAST.__class__(ttl=30.0, renew_every=10.0, margin=5.0, takeover_delay=0.0)
    ids = [f"c{n:02d}" for n in range(60)]
    a, _ = make_node(pg_url, "a", runs, ids=ids, rate=20.0, timing=slow_rounds)
    t0 = time.monotonic()
    a.start()
    try:
        wait_until(lambda: len(runs.running("a")) == 60, timeout=8, what="a runs all 60")
        took = time.monotonic() - t0
        assert 1.5 < took < 6, took  # paced by the bucket (20 a second), not all at once
        assert a.stats.rounds < 40  # catch-up rounds only while there was work left
    finally:
        a.kill()


def test_a_dead_nodes_instances_start_at_expiry_plus_takeover_delay(pg_url: str) -> None:
    """b's renew rounds are 2.5 s apart, yet it takes a's expired leases at their expiry (the
    view tells when another node's lease runs out), and starts them takeover_delay later."""
    runs = Runs()
    ttl = 6.0
    fast = FAST.__class__(ttl=ttl, renew_every=0.5, margin=1.0, takeover_delay=0.6)
    a, ha = make_node(pg_url, "a", runs, ids=IDS[:6], timing=fast)
    a.start()
    wait_until(lambda: len(runs.running("a")) == 6, timeout=10, what="a runs all")
    slow = FAST.__class__(ttl=ttl, renew_every=2.5, margin=0.9, takeover_delay=0.6)
    b, _ = make_node(pg_url, "b", runs, timing=slow)
    b.start()
    admin = LeaseStore(pg_url, "admin", ttl)
    try:
        time.sleep(0.5)  # b had its first round: nothing free to take
        a.kill()
        ha.crash()
        left = max(x.expires_in or 0.0 for x in admin.leases())
        expiry = time.monotonic() + left
        wait_until(lambda: len(runs.running("b")) == 6, timeout=ttl + 5, what="b took over")
        started = max(t for (n, _i), t in runs.open.items() if n == "b")
        late = started - expiry
        # At expiry + takeover_delay: not up to a renew round (2.5 s) later.
        assert slow.takeover_delay - 0.1 <= late <= slow.takeover_delay + 0.8, late
        assert runs.overlaps() == []
    finally:
        admin.close()
        b.kill()
