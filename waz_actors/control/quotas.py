"""Per-tenant quotas checked by the control commands (issue 11, item 9).

`tenants.max_instances` bounds the instances a tenant token may have its tenant own; a token may
carry its own limit (token.create max_instances). The admin token is exempt: the operator may
always add (the config file's [[instances]] do not count against anyone either).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from waz_actors.errors import QuotaExceeded

if TYPE_CHECKING:
    from waz_actors.control.commands.context import Context

# Count and create happen under the tenant's lock: two creates racing on the pool must not both
# see room for one. Held across the create (which waits for the instance to show) so the next
# count sees it; only that tenant's creates wait.
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _lock(tenant: str) -> threading.Lock:
    with _guard:
        lock = _locks.get(tenant)
        if lock is None:
            lock = _locks[tenant] = threading.Lock()
        return lock


def instance_limit(ctx: Context) -> int | None:
    """The caller's instance quota; None when it has none (the admin token)."""
    if ctx.identity.admin:
        return None
    own = ctx.identity.max_instances
    return ctx.config.tenants.max_instances if own is None else own


@contextmanager
def room_for_instance(ctx: Context, tenant: str) -> Iterator[None]:
    """Run the body (the create) only if the tenant is below the caller's quota."""
    limit = instance_limit(ctx)
    if limit is None:
        yield
        return
    with _lock(tenant):
        count = len(ctx.fleet.snapshots(tenant=tenant))
        if count >= limit:
            raise QuotaExceeded(
                f"tenant {tenant!r} has {count} instances; this token allows {limit}",
                {"quota": "max_instances", "limit": limit, "count": count},
            )
        yield
