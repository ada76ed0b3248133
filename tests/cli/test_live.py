"""watch, probe and pair: commands that follow the event stream, with faults injected
through the CLI (`sim fault`) or the client while they run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from tests.cli.conftest import Cli, CliDaemon, later, someone_else_called
from tests.waiting import wait_until
from waz_actors.control.client import Client

TO = "6281234567890"


def test_watch_sees_a_conflict_and_colours_the_figures(
    run: Cli, admin: Client, fresh: Callable[..., str]
) -> None:
    iid = fresh()
    # Inject the conflict once the watcher is subscribed (it has made its first request).
    t = later(someone_else_called(admin), lambda: admin.sim_fault(iid, "conflict"))
    out = run("watch", iid, "--duration", "1.0", "--refresh", "0.1", "--json").stdout
    t.join()
    doc = json.loads(out)
    fig = doc["instances"][iid]
    assert fig["conflicts_per_hour"] >= 1
    assert fig["levels"]["conflicts"] in ("yellow", "red")
    assert fig["attempts_per_hour"] >= 2  # connected, then reconnected after the cooldown
    assert fig["levels"]["attempts"] == "green"
    assert 0.0 <= fig["availability"] <= 1.0
    assert doc["events_seen"] >= 2  # the conflict and the state changes around it


def test_watch_live_lines_and_table(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh()
    t = later(someone_else_called(admin), lambda: admin.message_send(iid, TO, "watched"))
    r = run("watch", iid, "--max-events", "2", "--duration", "5", "--refresh", "0.05")
    t.join()
    assert "message 3EB0" in r.stdout and "sent" in r.stdout
    assert "CONFL/H" in r.stdout and "AVAIL" in r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())


def test_watch_trip_and_once(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh()
    assert "injected logout" in run("sim", "fault", iid, "logout").stdout
    wait_until(lambda: admin.instance_get(iid)["state"] == "logged_out")
    doc = json.loads(run("watch", iid, "--once", "--json").stdout)
    assert doc["instances"][iid]["state"] == "logged_out"
    every = json.loads(run("watch", "--once", "--json").stdout)
    assert {iid, "i0", "i1"} <= set(every["instances"])
    run("watch", "nosuch", "--once", code=1)


def test_probe_all_sent(run: Cli, fresh: Callable[..., str]) -> None:
    iid = fresh()
    r = run("probe", iid, TO, "--count", "3", "--interval", "0.01", "--wait", "5", "--json")
    doc = json.loads(r.stdout)
    assert doc["count"] == 3 and doc["sent"] == 3 and doc["success_rate"] == 1.0
    assert doc["passed"] is True
    assert all(x["ok"] and x["latency"] >= 0 for x in doc["results"])
    text = run("probe", iid, TO, "--count", "2", "--interval", "0").stdout
    assert text.count(" sent ") >= 2 and "2/2 sent (100%" in text


def test_probe_below_min_success_exits_1(run: Cli, fresh: Callable[..., str]) -> None:
    iid = fresh()
    run("sim", "fault", iid, "send_fail", "--param", "count=2", "--param", "permanent=true")
    r = run("probe", iid, TO, "--count", "3", "--interval", "0", "--wait", "5", code=1)
    assert "1/3 sent (33%" in r.stdout
    assert r.stdout.count("  failed  ") == 2
    assert "below --min-success 80%" in r.stderr
    # The same outcome passes a lower bar.
    run("sim", "fault", iid, "send_fail", "--param", "count=1", "--param", "permanent=true")
    doc = json.loads(
        run("probe", iid, TO, "--count", "2", "--interval", "0", "--min-success", "0.5",
            "--json").stdout
    )  # fmt: skip
    assert doc["sent"] == 1 and doc["passed"] is True


def test_probe_bad_input(run: Cli, fresh: Callable[..., str]) -> None:
    run("probe", "nosuch", TO, "--count", "1", code=1)
    run("probe", "i0", TO, "--count", "0", code=2)
    run("probe", "i0", TO, "--min-success", "1.5", code=2)


def test_pair_shows_qr_until_paired(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh()
    admin.instance_logout(iid)

    def scanned() -> bool:
        info = admin.instance_get(iid)
        return info["state"] == "pairing" and (info.get("pairing") or {}).get("qr")

    t = later(scanned, lambda: admin.sim_fault(iid, "complete_pairing"))
    r = run("instance", "pair", iid, "--wait", "5")
    t.join()
    assert "code: 2@" in r.stdout
    assert "\u2580" in r.stdout or "\u2584" in r.stdout or "\u2588" in r.stdout  # QR blocks
    assert f"paired: {iid} is online" in r.stdout
    assert admin.instance_get(iid)["state"] == "online"


def test_pair_json_and_timeout(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh()
    admin.instance_logout(iid)
    r = run("instance", "pair", iid, "--wait", "0.3", "--json", code=1)
    doc = json.loads(r.stdout)
    assert doc["paired"] is False and doc["codes_shown"] >= 1
    assert "not paired within 0.3 s" in r.stderr
    # pairing an online instance is refused by the daemon
    other = fresh()
    assert "invalid_state" in run("instance", "pair", other, "--wait", "1", code=1).stderr


def test_pair_with_a_tenant_token_follows_rotating_codes(
    run: Cli, admin: Client, fresh: Callable[..., str]
) -> None:
    # The rotating QR codes reach the CLI on its own stream (they are not on the PUB socket).
    token = admin.token_create("pairer", "pair test")["token"]
    admin.instance_create("sim", "pq1", tenant="pairer")
    admin.instance_start("pq1")
    wait_until(lambda: admin.instance_get("pq1")["state"] == "online")
    admin.instance_logout("pq1")
    r = Cli({**run.env, "WAZ_TOKEN": token})(
        "instance", "pair", "pq1", "--wait", "1", "--json", code=1
    )
    assert json.loads(r.stdout or "{}").get("codes_shown", 0) >= 2, r.stderr


def test_pair_with_phone_prints_code(run: Cli, admin: Client, fresh: Callable[..., str]) -> None:
    iid = fresh()
    admin.instance_logout(iid)
    doc = json.loads(run("instance", "pair", iid, "--phone", TO, "--json").stdout)
    assert doc["instance_id"] == iid and doc["code"]
    run("instance", "pair", iid, "--phone", "abc", code=1)


def test_sim_stats(run: Cli, fresh: Callable[..., str]) -> None:
    iid = fresh()
    run("sim", "fault", iid, "disconnect")
    doc = json.loads(run("sim", "stats", "--json").stdout)
    assert iid in doc["instances"] and doc["faults"]["disconnect"] >= 1
    assert "(total)" in run("sim", "stats").stdout
    assert "bad_request" in run("sim", "fault", iid, "meteor", code=1).stderr
    run("sim", "fault", iid, "ban", "--param", "oops", code=2)


def test_watch_exits_cleanly_on_ctrl_c(daemon: CliDaemon, fresh: Callable[..., str]) -> None:
    iid = fresh()
    env = {
        **os.environ,
        "WAZ_ENDPOINT": daemon.cfg.control_endpoint,
        "WAZ_STATE_DIR": str(daemon.cfg.state_dir),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "waz_actors", "watch", iid, "--refresh", "0.05"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("-- ")  # the first table is out: it is live
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert iid in out and "AVAIL" in out


def test_event_commands_follow_the_control_socket(run: Cli) -> None:
    # watch and probe read their token's stream on the control socket (events.subscribe): a
    # tcp endpoint needs no events endpoint any more; a dead one is "cannot reach".
    r = run(
        "watch", "--endpoint", "tcp://127.0.0.1:9", "--duration", "0.1", "--timeout", "0.3", code=3
    )
    assert "cannot reach" in r.stderr
    r = run("probe", "i0", TO, "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.3", code=3)
    assert "cannot reach" in r.stderr


def test_watch_with_a_tenant_token_sees_its_own_instances_only(
    run: Cli, admin: Client, daemon: CliDaemon
) -> None:
    token = admin.token_create("shopw", "watch test")["token"]
    mine, theirs = "wmine", "wtheirs"
    admin.instance_create("sim", mine, tenant="shopw")
    admin.instance_create("sim", theirs, tenant="otherw")
    for iid in (mine, theirs):
        admin.instance_start(iid)
        wait_until(lambda iid=iid: admin.instance_get(iid)["state"] == "online")

    def both_send() -> None:
        other = admin.message_send(theirs, TO, "not for shopw")["message_id"]
        wait_until(lambda: admin.message_get(other)["status"] == "sent")
        admin.message_send(mine, TO, "for shopw")

    tenant_run = Cli({**run.env, "WAZ_TOKEN": token})
    t = later(someone_else_called(admin), both_send)
    r = tenant_run("watch", "--max-events", "2", "--duration", "10", "--refresh", "100")
    t.join()
    lines = [line for line in r.stdout.splitlines() if " message " in line]
    assert lines and all(f"  {mine}  " in line for line in lines), r.stdout
    assert theirs not in r.stdout
