"""The instance as the status board shows it."""

from __future__ import annotations

from typing import Any

from waz_actors.actors.board import InstanceSnapshot
from waz_actors.actors.instance.connection import Connection
from waz_actors.actors.instance.context import Context
from waz_actors.actors.instance.outbox import Outbox
from waz_actors.actors.instance.pairing import Pairing

_Views = tuple[dict[str, Any], dict[str, Any], dict[str, Any], float | None]


class Snapshots:
    def __init__(
        self, ctx: Context, connection: Connection, outbox: Outbox, pairing: Pairing
    ) -> None:
        self.ctx = ctx
        self.connection = connection
        self.outbox = outbox
        self.pairing = pairing
        self._views: tuple[float, _Views] | None = None  # (when built, the policies' views)

    def build(self, light: bool = False) -> InstanceSnapshot:
        """`light`: reuse the connection policies' part if it is under a daemon second old.

        Sends publish a snapshot at each step (queue depth, counters), and rebuilding the
        breaker, conflict and throttle views each time was most of an instance's CPU per
        message. Every change to those policies publishes a full snapshot, so a light one is
        behind only in what time alone moves (a sliding window), by under a second."""
        ctx, conn, outbox = self.ctx, self.connection, self.outbox
        now = ctx.clock.now()
        rate = outbox.success.rate(now)
        depth = len(outbox.queue)
        online = conn.online_total + (now - conn.online_at if conn.online_at is not None else 0.0)
        cached = self._views
        if not light or cached is None or now - cached[0] >= 1.0:
            cached = (now, self._policy_views(now))
            self._views = cached
        breaker, conflicts, throttle, next_at = cached[1]
        shown = self.pairing.shown
        return InstanceSnapshot(
            instance_id=ctx.id,
            tenant=ctx.record.tenant,
            driver=ctx.record.driver,
            state=str(ctx.state),
            since=ctx.since,
            desired=ctx.desired,
            jid=ctx.jid,
            last_code=ctx.last_code,
            last_reason=ctx.last_reason,
            breaker=breaker,
            conflicts=conflicts,
            throttle=throttle,
            next_attempt_at=next_at,
            queue_depth=depth,
            in_flight=1 if outbox.in_flight is not None else 0,
            sent=outbox.sent,
            failed=outbox.failed,
            success_rate=rate,
            health=str(outbox.thresholds.assess(rate, depth)),
            pairing=dict(shown) if shown else None,
            connect_attempts=conn.connect_attempts,
            online_seconds=online,
            recycles=conn.liveness.recycles,
            keepalive_failures=conn.keepalive_failures,
        )

    def _policy_views(self, now: float) -> _Views:
        conn, ctx = self.connection, self.ctx
        next_at = None if conn.next_attempt is None else ctx.wall_of(conn.next_attempt)
        return (
            self._walls(conn.breaker.snapshot(now), ("opened_at", "next_probe_at")),
            {
                **self._walls(conn.conflicts.snapshot(now), ("last",)),
                "times": [
                    ctx.wall_of(t)
                    for t in conn.conflicts.times()
                    if now - t <= ctx.cfg.conflict.window
                ],
            },
            self._walls(
                conn.throttle.snapshot(now), ("last_attempt", "last_conflict", "next_allowed")
            ),
            next_at,
        )

    def _walls(self, snap: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        for k in keys:
            if snap.get(k) is not None:
                snap[k] = self.ctx.wall_of(snap[k])
        return snap
