"""A node cut off from PostgreSQL closes every session of its fenced leases at once, before its
leases can expire, even while its supervisor and its instance actors are stuck on store reads
that hang on the cut connection (docs/design.md, Cluster, "Self-fencing").

Two daemons in this process on the real local PostgreSQL and one in-process simulator; daemon
`a` reaches the database through a TCP proxy that stops forwarding (its connections stay open
and silent, as behind a real partition). Right after the cut, `a`'s supervisor is stuck on a
read (a ClusterStart for an instance it does not run reads its record) and every one of its
instance actors is stuck on a read (a wake-up makes each read its queue): the fence must not
wait for either of them.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import pytest

from tests.cluster.tcp_proxy import TcpProxy
from tests.cluster.test_daemon_cluster import running, shared_sim  # noqa: F401  (fixture)
from tests.core.daemon_util import fast_config
from tests.waiting import wait_until
from waz_actors.actors.messages import ClusterStart, ClusterWake
from waz_actors.app.runtime import Daemon
from waz_actors.config import Config
from waz_actors.drivers.sim.network import SimNetwork

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

N = 24
TTL, RENEW, MARGIN = 1.5, 0.2, 0.5  # real seconds (daemon ms at FAST)


def config(tmp: Path, url: str, node: str) -> Config:
    return fast_config(
        tmp / node,
        instances=N,
        store={"url": url},
        cluster={
            "enabled": True,
            "node_id": node,
            "lease_ttl": TTL * 1000,
            "renew_every": RENEW * 1000,
            "fence_margin": MARGIN * 1000,
            "takeover_delay": 100.0,
            "acquire_rate": 200.0,
        },
    )


def live(sim: SimNetwork, ids: set[str]) -> set[str]:
    return ids & set(sim.instance_ids(live_only=True))


def test_a_partitioned_node_closes_all_its_sessions_at_once_while_its_actors_are_stuck(
    tmp_path: Path,
    pg_url: str,
    shared_sim: SimNetwork,  # noqa: F811
) -> None:
    host = urllib.parse.urlsplit(pg_url)
    proxy = TcpProxy(host.hostname or "127.0.0.1", host.port or 5432)
    a = Daemon(config(tmp_path, proxy.url(pg_url), "a"), with_control=False, sim=shared_sim)
    b = Daemon(config(tmp_path, pg_url, "b"), with_control=False, sim=shared_sim)
    a.start()
    b.start()
    try:

        def split_and_online() -> bool:
            ra, rb = running(a), running(b)
            assert not ra & rb, f"both run {ra & rb}"
            return len(ra) == len(rb) == N // 2 and len(live(shared_sim, ra | rb)) == N

        wait_until(split_and_online, timeout=30, what=lambda: f"a {running(a)}, b {running(b)}")
        mine = running(a)
        theirs = running(b)
        assert a.supervisor is not None and a.cluster is not None and b.cluster is not None

        proxy.partition()
        cut = time.monotonic()
        # Every actor of `a` reads its queue (hangs), and so does its supervisor (the record
        # of an instance it does not run): neither can stop a session now.
        a.supervisor.tell(ClusterWake(None))
        a.supervisor.tell(ClusterStart(sorted(theirs)[0]))

        wait_until(lambda: not live(shared_sim, mine), timeout=10, what="a's sessions closed")
        closed_after = time.monotonic() - cut
        # The last renew that came back was sent at most `renew_every` before the cut, so no
        # lease of `a` expires before cut - renew_every + ttl; the fence deadline is `margin`
        # earlier, and every session closes at it, all at once.
        assert closed_after < TTL - RENEW, f"closed {closed_after:.3f} s after the cut"
        assert a.cluster.node.stats.fenced == N // 2
        assert len(a.cluster.node.held()) == 0

        # `b` takes them after expiry + takeover delay: no conflict, every instance online.
        wait_until(
            lambda: len(running(b)) == N and len(live(shared_sim, mine | theirs)) == N,
            timeout=30,
            what=lambda: f"b runs {len(running(b))}, live {len(live(shared_sim, mine))} of a's",
        )
        assert shared_sim.stats()["totals"]["conflicts_caused_by_ours"] == 0

        # Healed: `a`'s stuck reads end, its actors stop, and none of them connects again.
        proxy.heal()
        wait_until(lambda: not running(a) & mine, timeout=30, what="a's fenced actors stopped")
        assert shared_sim.stats()["totals"]["conflicts_caused_by_ours"] == 0
        for iid in mine:
            assert shared_sim.session_states(iid).count("live") <= 1
    finally:
        proxy.heal()
        a.stop()
        b.stop()
        proxy.close()
