"""`waz-actors probe INSTANCE TO`: send test messages, follow them to their outcome, report
each latency and the success rate; exit 1 below --min-success (for cron and CI)."""

from __future__ import annotations

import time
from operator import methodcaller
from typing import Any

import click

from waz_actors.cli.common import (
    Conn,
    Spinner,
    coloured,
    connection_options,
    daemon_errors,
    emit_json,
    fail,
    json_option,
    percent,
)
from waz_actors.cli.figures import ProbeTally

POLL = 1.0  # seconds between message.get reads for probes whose event we may have missed


@click.command()
@click.argument("instance_id")
@click.argument("to")
@click.option("--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option(
    "--interval",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds between sends.",
)
@click.option(
    "--min-success",
    type=click.FloatRange(0, 1),
    default=0.8,
    show_default=True,
    help="Exit 1 below this success rate (0-1).",
)
@click.option(
    "--wait",
    "per_message",
    type=click.FloatRange(min=0.01),
    default=60.0,
    show_default=True,
    help="Seconds each message may take before it counts as failed.",
)
@click.option("--text", default="waz-actors probe {n}/{count}", show_default=True)
@json_option
@connection_options
def probe(
    conn: Conn,
    instance_id: str,
    to: str,
    count: int,
    interval: float,
    min_success: float,
    per_message: float,
    text: str,
    as_json: bool,
) -> None:
    """Send COUNT test messages INTERVAL seconds apart and report how they fared."""
    tally = ProbeTally()
    with daemon_errors(conn):
        # The token's own stream on the control socket: works for a tenant token, remotely too.
        stream = conn.client().subscribe([f"message.{instance_id}.status"])
    try:
        with Spinner(f"probing {instance_id}") as spin:
            _run(
                conn,
                stream,
                tally,
                instance_id,
                to,
                count,
                interval,
                per_message,
                text,
                as_json,
                spin,
            )
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
    finally:
        stream.close()
    summary = {"instance_id": instance_id, "to": to, "min_success": min_success, **tally.summary()}
    rate = summary["success_rate"] or 0.0
    summary["passed"] = rate >= min_success
    if as_json:
        emit_json(summary)
    else:
        lat = summary["latency"]
        click.echo(
            f"{summary['sent']}/{summary['count']} sent ({percent(rate)}, minimum"
            f" {percent(min_success)}); latency min {_s(lat['min'])} median"
            f" {_s(lat['median'])} max {_s(lat['max'])}"
        )
    if not summary["passed"]:
        raise fail(
            f"probe: success rate {percent(rate)} below --min-success {percent(min_success)}"
        )


def _run(
    conn: Conn,
    stream: Any,
    tally: ProbeTally,
    instance_id: str,
    to: str,
    count: int,
    interval: float,
    per_message: float,
    text: str,
    quiet: bool,
    spin: Spinner,
) -> None:
    next_poll = time.monotonic() + POLL

    def report(out: dict[str, Any] | None) -> None:
        if out is not None and not quiet:
            ok = out["ok"]
            line = (
                f"#{out['n']:<3} {out['message_id']}  "
                f"{coloured(out['status'], 'green' if ok else 'red')}"
                f"  {_s(out['latency'])}"
            )
            if not ok and out.get("reason"):
                line += f"  ({out['reason']})"
            click.echo(line)

    def pump(until: float | None) -> None:
        """Take outcomes until `until`, or (None) until every probe has settled; each probe
        has its own --wait deadline, so this ends."""
        nonlocal next_poll
        while True:
            now = time.monotonic()
            for out in tally.time_out(now, per_message):
                report(out)
            if (until is None and not tally.pending()) or (until is not None and now >= until):
                return
            step = 0.2 if until is None else min(0.2, until - now)
            ev = stream.recv(step)
            if ev is not None:
                body = ev[1]
                report(
                    tally.outcome(
                        str(body.get("message_id")),
                        str(body.get("status")),
                        time.monotonic(),
                        body.get("reason"),
                    )
                )
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + POLL
                for mid in tally.pending():
                    info = conn.call(methodcaller("message_get", mid))
                    report(
                        tally.outcome(
                            mid, str(info.get("status")), time.monotonic(), info.get("last_error")
                        )
                    )
            spin.update(f"probing {instance_id}: {len(tally.outcomes)}/{count} settled")

    for n in range(1, count + 1):
        body = text.replace("{n}", str(n)).replace("{count}", str(count))
        data = conn.call(methodcaller("message_send", instance_id, to, body))
        tally.sent(data["message_id"], time.monotonic())
        if n < count:
            pump(time.monotonic() + interval)
    pump(None)


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}s"
