"""Campaigns: creating 100,000 recipients, the daemon's RSS while a big campaign runs, and
messages per second through a campaign vs direct `message.send` in the same run (pacing off).

    .venv/bin/python bench/campaign.py [--recipients 100000] [--messages 3000] [--run 20]

A real `waz-actors run` subprocess (sim driver in-process, store synchronous=FULL), three online
instances of one tenant. Steps:
1. throughput: --messages direct sends (one client, then --senders clients in threads, each one
   request at a time, retrying `queue_full` after 5 ms: what a panel's loop does) until the sim
   delivered them; then a
   campaign of --messages other numbers, timed from campaign.start to `done`;
2. a campaign of --recipients created over the protocol in calls of 1,000, timed;
3. that campaign started for --run seconds while the daemon's RSS is sampled, then cancelled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DaemonProcess,
    config_toml,
    machine_line,
    proc_sample,
    wait_until,
)

from waz_actors.control.client import Client, ClientError

IDS = ["b1", "b2", "b3"]


def delivered(c: Client) -> int:
    return int(c.sim_stats()["totals"]["delivered"])


def direct(d: DaemonProcess, c: Client, n: int, senders: int) -> float:
    """`senders` clients in threads, each sending its share one request at a time."""
    base = delivered(c)

    def send(k: int) -> None:
        with Client(d.endpoint, d.token(), timeout=30.0) as mine:
            for i in range(k, n, senders):
                while True:
                    try:
                        mine.message_send(IDS[i % 3], f"6281{i:08d}{k}", text=f"direct {i}")
                        break
                    except ClientError as e:
                        if e.code != "queue_full":
                            raise
                        time.sleep(0.005)

    t0 = time.monotonic()
    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_until(lambda: delivered(c) >= base + n, 600, "direct sends delivered")
    return n / (time.monotonic() - t0)


def campaign(c: Client, n: int) -> float:
    rows = [{"to": f"6282{i:08d}1"} for i in range(n)]
    cid = c.campaign_create("tput", IDS, text="campaign {a|b}", recipients=rows, timeout=60)[
        "campaign_id"
    ]
    t0 = time.monotonic()
    c.campaign_start(cid)
    wait_until(lambda: c.campaign_get(cid)["state"] == "done", 600, "campaign done")
    return n / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipients", type=int, default=100_000)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--run", type=float, default=20.0)
    ap.add_argument("--senders", type=int, default=8, help="direct: concurrent clients")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wzcamp", dir="/tmp"))
    cfg = work / "waz.toml"
    cfg.write_text(
        config_toml(
            {
                "daemon": {"time_scale": 1.0, "connect_rate": 100.0},
                "queue": {"pacing_interval": 0.0},
                "sim": {"connect_latency": 0.0, "send_latency": 0.0},
            },
            [{"id": i, "driver": "sim", "tenant": "bench"} for i in IDS],
        )
    )
    d = DaemonProcess(cfg, work / "state", work / "run")
    d.start()
    try:
        c = d.wait_ready(60)
        c.timeout = 60.0
        wait_until(
            lambda: all(c.instance_get(i)["state"] == "online" for i in IDS), 60, "instances"
        )
        print(machine_line())
        rate_one = direct(d, c, args.messages, 1)
        rate_direct = direct(d, c, args.messages, args.senders)
        rate_campaign = campaign(c, args.messages)
        print(
            f"throughput, {args.messages} messages over 3 instances, pacing off:"
            f" direct {rate_one:.0f} msg/s with one client, {rate_direct:.0f} msg/s with"
            f" {args.senders}; campaign {rate_campaign:.0f} msg/s"
            f" ({rate_campaign / rate_direct:.0%} of direct with {args.senders} clients)"
        )
        rss0 = proc_sample(d.pid).rss_mib
        rows = [{"to": f"6283{i:08d}1", "vars": {"name": f"N{i}"}} for i in range(args.recipients)]
        t0 = time.monotonic()
        cid = c.campaign_create("big", IDS, text="{Halo|Hai} {name}")["campaign_id"]
        for k in range(0, len(rows), 1000):
            c.campaign_add_recipients(cid, rows[k : k + 1000], timeout=60)
        took = time.monotonic() - t0
        rss1 = proc_sample(d.pid).rss_mib
        print(
            f"create: {args.recipients} recipients in {args.recipients // 1000} calls of 1,000:"
            f" {took:.2f} s ({args.recipients / took:.0f} recipients/s)"
        )
        c.campaign_start(cid)
        peak, t_end = rss1, time.monotonic() + args.run
        while time.monotonic() < t_end:
            peak = max(peak, proc_sample(d.pid).rss_mib)
            time.sleep(0.2)
        got = c.campaign_get(cid)
        c.campaign_cancel(cid)
        print(
            f"rss: {rss0:.1f} MiB before create, {rss1:.1f} MiB after, peak {peak:.1f} MiB while"
            f" running {args.run:g} s ({got['counts']['sent']} sent):"
            f" growth {peak - rss0:.1f} MiB"
        )
    finally:
        d.stop()


if __name__ == "__main__":
    main()
