"""`waz-actors watch [INSTANCE...]`: a live view from the event stream with rolling figures
(the seeds' connection and conflict monitors, without piping any log)."""

from __future__ import annotations

import time
from operator import methodcaller
from typing import Any

import click

from waz_actors.cli.common import (
    Conn,
    coloured,
    connection_options,
    daemon_errors,
    emit_json,
    json_option,
    percent,
    table,
)
from waz_actors.cli.figures import (
    Board,
    attempts_level,
    availability_level,
    conflicts_level,
    success_level,
)

DETAIL_LIMIT = 50  # instances polled one by one each refresh; beyond that only the list


@click.command()
@click.argument("instances", nargs=-1)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.05),
    default=10.0,
    show_default=True,
    help="Seconds between figure tables.",
)
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after SECONDS.")
@click.option("--max-events", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option("--once", is_flag=True, help="Print the figures once and exit (no events).")
@click.option("--quiet", "-q", is_flag=True, help="Figures only, no event lines.")
@json_option
@connection_options
def watch(
    conn: Conn,
    instances: tuple[str, ...],
    refresh: float,
    duration: float | None,
    max_events: int | None,
    once: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Follow state changes, conflicts, breaker trips, message outcomes and alarms live,
    with conflicts/h, connection attempts/h, success rate and availability. Ctrl-C exits
    (with --json, one document with the final figures is printed at the end)."""
    board = Board()
    wanted = list(instances)
    topics = (
        [t for i in wanted for t in (f"instance.{i}.", f"message.{i}.")]
        + ["daemon.alarm", "campaign."]
        if wanted
        else [""]
    )
    stream = None
    if not once:
        with daemon_errors(conn):
            # The token's own stream (events.subscribe): a tenant sees its instances only.
            stream = conn.client().subscribe(topics)
    events = 0
    started = time.monotonic()
    try:
        _poll(conn, board, wanted, started)
        if once:
            _finish(board, as_json, 0, started)  # a snapshot: no availability to speak of
            return
        if not as_json:
            click.echo(_figures(board, time.monotonic()) + _campaigns(conn))
        next_table = started + refresh
        while True:
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            if max_events is not None and events >= max_events:
                break
            wait = min(0.25, max(0.0, next_table - now))
            if duration is not None:
                wait = min(wait, max(0.0, started + duration - now))
            assert stream is not None
            ev = stream.recv(wait)
            if ev is not None:
                topic, body = ev
                events += 1
                board.on_event(topic, body, time.monotonic())
                if not as_json and not quiet:
                    click.echo(event_line(topic, body))
            if time.monotonic() >= next_table:
                next_table = time.monotonic() + refresh
                _poll(conn, board, wanted, time.monotonic())
                if not as_json:
                    click.echo(_figures(board, time.monotonic()) + _campaigns(conn))
    except KeyboardInterrupt:
        pass  # Ctrl-C is the normal way out: print the final figures below
    finally:
        if stream is not None:
            stream.close()
    _poll(conn, board, wanted, time.monotonic())
    _finish(board, as_json, events)


def _finish(board: Board, as_json: bool, events: int = 0, now: float | None = None) -> None:
    now = time.monotonic() if now is None else now
    if as_json:
        emit_json({**board.to_dict(now), "events_seen": events})
    else:
        click.echo(_figures(board, now))


def _poll(conn: Conn, board: Board, wanted: list[str], now: float) -> None:
    """States from the list; the daemon's rolling windows from instance.get."""
    if wanted:
        ids = wanted
    else:
        rows = conn.call(lambda c: c.instance_list())
        for r in rows:
            fig = board.get(r["instance_id"])
            if r.get("state") != fig.state:
                fig.set_state(r["state"], now)
            fig.health = r.get("health")
        ids = [r["instance_id"] for r in rows][:DETAIL_LIMIT]
    for iid in ids:
        info = conn.call(methodcaller("instance_get", iid))
        board.get(iid).update_from(info, now)


def _figures(board: Board, now: float) -> str:
    rows = []
    for iid, fig in sorted(board.instances.items()):
        avail = fig.availability(now)
        rate = fig.success_rate()
        rows.append(
            [
                iid,
                fig.state or "-",
                (_n(fig.conflicts_per_hour), conflicts_level(fig.conflicts_per_hour)),
                (_n(fig.attempts_per_hour), attempts_level(fig.attempts_per_hour)),
                (percent(rate), success_level(rate)),
                (percent(avail), availability_level(avail)),
                fig.health or "-",
            ]
        )
    if not rows:
        return "no instances"
    heads = ["INSTANCE", "STATE", "CONFL/H", "ATTEMPTS/H", "SUCCESS", "AVAIL", "HEALTH"]
    stamp = time.strftime("%H:%M:%S")
    return f"-- {stamp} --\n" + table(heads, rows)


def _campaigns(conn: Conn) -> str:
    """Running campaigns under the figures: id, name, sent/total, failed, pending."""
    rows = []
    for c in conn.call(lambda cl: cl.campaign_list("running")):
        n = c["counts"]
        sent = f"{n['sent']}/{sum(n.values())}"
        rows.append([c["campaign_id"], c["name"], sent, n["failed"], n["pending"]])
    if not rows:
        return ""
    return "\n" + table(["CAMPAIGN", "NAME", "SENT", "FAILED", "PENDING"], rows)


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def event_line(topic: str, body: dict[str, Any]) -> str:
    """One line per event, for a person reading along."""
    t = body.get("time")
    stamp = time.strftime("%H:%M:%S", time.localtime(t)) if isinstance(t, int | float) else "--"
    iid = body.get("instance_id", "-")
    if topic.startswith("campaign."):
        c = body.get("counts") or {}
        iid = f"campaign {body.get('campaign_id')}"
        text = f"{body.get('state')}: " + " ".join(f"{k} {v}" for k, v in c.items() if v)
        if body.get("reason"):
            text += f" ({body['reason']})"
    elif topic == "daemon.alarm":
        text = coloured(f"ALARM {body.get('kind')}: {body.get('message', '')}", "red")
    elif topic.endswith(".state"):
        state = str(body.get("state"))
        colour = "red" if state in ("tripped", "banned", "logged_out") else None
        text = f"{body.get('previous', '?')} -> {coloured(state, colour)}"
        if state == "tripped":
            text = coloured("BREAKER TRIPPED ", "red") + text
        if body.get("reason"):
            text += f" ({body['reason']})"
    elif topic.endswith(".conflict"):
        text = coloured(
            f"CONFLICT 440 ({body.get('count_in_window', '?')} in window),"
            f" cooldown {body.get('cooldown', '?')} s",
            "red",
        )
    elif topic.endswith(".qr"):
        text = "new pairing code" if body.get("kind") == "code" else "new QR code"
    elif topic.endswith(".status"):
        status = str(body.get("status"))
        colour = {"sent": "green", "failed": "red", "expired": "red"}.get(status)
        text = f"message {body.get('message_id')} {coloured(status, colour)}"
        if status in ("failed", "expired") and body.get("reason"):
            text += f" ({body['reason']})"
    elif topic.endswith(".in"):
        from waz_actors.cli.inbox import summary

        where = f" in {body.get('chat')}" if body.get("group") else ""
        text = f"received from {body.get('from')}{where}: {summary(body)}"
    else:
        text = topic
    return f"{stamp}  {iid}  {text}"
