"""The chaos run's figures and its printed report (bench/chaos.py runs both sides).

Split from chaos.py to keep each file under 500 lines; chaos.py re-exports these names.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from _common import fmt, pct, ratio

if TYPE_CHECKING:
    from chaos import Plan

HELD_STATES = ("banned", "logged_out")


# --- figures ----------------------------------------------------------------------------------


def availability(
    changes: list[tuple[float, str, bool]],
    kills: list[float],
    instances: list[str],
    window: tuple[float, float],
) -> float:
    """Share of instance-time online within `window`; a kill ends every online stretch."""
    t0, t1 = window
    events = sorted(
        [(t, 0, iid, online) for t, iid, online in changes] + [(t, 1, None, False) for t in kills],
        key=lambda e: (e[0], e[1]),
    )
    since: dict[str, float] = {}
    total = 0.0
    for t, _, iid, online in events:
        targets = [iid] if iid is not None else list(since)
        for i in targets:
            if i is None:
                continue
            if online and i not in since:
                since[i] = t
            elif not online and i in since:
                s = since.pop(i)
                total += max(0.0, min(t, t1) - max(s, t0))
    for s in since.values():
        total += max(0.0, t1 - max(s, t0))
    return total / (len(instances) * (t1 - t0)) if t1 > t0 else 0.0


def figures(
    plan: Plan,
    *,
    accepted: dict[str, int],
    accept_time: dict[str, float],
    stats: dict[str, Any],
    log: list[dict[str, Any]],
    changes: list[tuple[float, str, bool]],
    kills: list[float],
    window: tuple[float, float],
    status_of: Any,
    instance_state: dict[str, str],
    instance_of: dict[str, str],
) -> dict[str, Any]:
    totals = stats["totals"]
    delivered_at: dict[str, float] = {}
    per_number: Counter[int] = Counter()
    unaccounted = 0
    for entry in log:
        mid = entry["message_id"]
        delivered_at.setdefault(mid, entry["time"])
        if mid in accepted:
            per_number[accepted[mid]] += 1
        else:
            unaccounted += 1
    delivered = [mid for mid in accepted if mid in delivered_at]
    held = failed = lost = 0
    lost_ids: list[str] = []
    for mid in accepted:
        if mid in delivered_at:
            continue
        status = status_of(mid)
        if status in ("queued", "sending") and instance_state.get(instance_of.get(mid, "")) in (
            HELD_STATES
        ):
            held += 1
        elif status in ("failed", "expired", "cancelled"):
            failed += 1
        else:
            lost += 1
            lost_ids.append(mid)
    eligible = len(accepted) - held
    lat = [delivered_at[mid] - accept_time[mid] for mid in delivered]
    hours = (window[1] - window[0]) / plan.time_scale / 3600
    p50, p99 = pct(lat, 0.5), pct(lat, 0.99)
    return {
        "planned": len(plan.sends),
        "accepted": len(accepted),
        "delivered": len(delivered),
        "held": held,
        "failed": failed,
        "lost": lost,
        "lost_ids": lost_ids[:20],
        "duplicates_dropped_by_sim": totals["duplicates"],
        "duplicates_delivered": sum(c - 1 for c in per_number.values() if c > 1) + unaccounted,
        "conflicts_caused": totals["conflicts_caused_by_ours"],
        "conflicts_injected": totals["conflicts_injected"],
        "stale_replaced": totals["stale_replaced"],
        "connects": totals["connects"],
        "daemon_hours": hours,
        "connects_per_instance_hour": totals["connects"] / (len(plan.instances) * hours),
        "availability": availability(changes, kills, plan.instances, window),
        "delivery_success": len(delivered) / eligible if eligible else None,
        "delivery_of_planned": len(delivered) / len(plan.sends) if plan.sends else None,
        "latency_p50_s": p50,
        "latency_p99_s": p99,
        "latency_p50_daemon_s": None if p50 is None else p50 / plan.time_scale,
        "latency_p99_daemon_s": None if p99 is None else p99 / plan.time_scale,
        "faults_fired": stats.get("faults", {}),
    }


ROWS = [
    ("planned messages", "planned", 0),
    ("accepted", "accepted", 0),
    ("delivered", "delivered", 0),
    ("held (banned/logged out)", "held", 0),
    ("failed (reported)", "failed", 0),
    ("lost", "lost", 0),
    ("duplicates dropped by sim", "duplicates_dropped_by_sim", 0),
    ("duplicates delivered", "duplicates_delivered", 0),
    ("conflicts caused by us", "conflicts_caused", 0),
    ("conflicts injected", "conflicts_injected", 0),
    ("stale sessions replaced", "stale_replaced", 0),
    ("connects / instance-hour", "connects_per_instance_hour", 1),
    ("availability", "availability", 3),
    ("delivery success", "delivery_success", 3),
    ("delivered / planned", "delivery_of_planned", 3),
    ("latency p50 (real s)", "latency_p50_s", 3),
    ("latency p99 (real s)", "latency_p99_s", 3),
    ("latency p50 (daemon s)", "latency_p50_daemon_s", 1),
    ("latency p99 (daemon s)", "latency_p99_daemon_s", 1),
    ("kill -9", "kills", 0),
]


def report(res: dict[str, Any]) -> str:
    ours, base = res["ours"], res.get("baseline")
    p = res["params"]
    lines = [
        f"machine: {res['machine']}",
        f"chaos: {p['instances']} instances, {p['messages']} messages, {p['kills']} kill -9, "
        f"{p['duration']:g} s real = {p['duration'] / p['time_scale'] / 3600:.2f} daemon h "
        f"(time_scale {p['time_scale']:g}), faults per instance-hour {p['faults']}, "
        f"seed {p['seed']}",
        "",
        f"{'':<28}{'waz-actors':>12}" + (f"{'seeds':>12}{'ours/seeds':>12}" if base else ""),
    ]
    for name, key, digits in ROWS:
        row = f"{name:<28}{fmt(_num(ours.get(key), digits), digits):>12}"
        if base:
            row += f"{fmt(_num(base.get(key), digits), digits):>12}"
            row += f"{ratio(ours.get(key), base.get(key)):>12}"
        lines.append(row)
    lines += [
        "",
        f"ours: restart to ready (s) {ours['restart_to_ready_s']}, send retries while down "
        f"{ours['send_retries']}, refusals {ours['send_refusals'] or 'none'}, "
        f"drained {ours['drained']}, faults fired {ours['faults_fired']}",
    ]
    if base:
        lines.append(
            f"seeds: refused (session not open) {base['refused']}, not attempted (process down) "
            f"{base['not_attempted']}, faults fired {base['faults_fired']}"
        )
    lines.append(f"work files (logs, databases): {res['work_dir']}")
    if ours["lost_ids"]:
        lines.append(f"LOST message ids (first 20): {ours['lost_ids']}")
    return "\n".join(lines)


def _num(value: Any, digits: int) -> Any:
    if isinstance(value, float) and digits == 0:
        return round(value)
    return value
