"""status, instance *, token * and every exit code, against a real daemon."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli, CliDaemon, start_daemon
from tests.waiting import wait_until
from waz_actors.control.client import Client


def test_status_json_and_table(run: Cli, daemon: CliDaemon) -> None:
    wait_until(lambda: daemon.board.get("i0") and daemon.board.get("i0").state == "online")
    doc = json.loads(run("status", "--json").stdout)
    assert doc["instances"] >= 2
    assert set(doc["states"]) >= {"online", "stopped", "cooldown", "tripped"}
    assert doc["accepting"] is True
    assert {"queued", "in_flight", "sent", "failed"} <= set(doc["queue"])
    text = run("status").stdout
    assert "instances" in text and "conflicts/h" in text and "success rate" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_instance_lifecycle(run: Cli, admin: Client) -> None:
    out = run("instance", "create", "life1", "--driver", "sim", "--json").stdout
    assert json.loads(out) == {"instance_id": "life1"}
    assert admin.instance_get("life1")["state"] == "stopped"

    rows = json.loads(run("instance", "list", "--json").stdout)["instances"]
    assert "life1" in [r["instance_id"] for r in rows]
    stopped = json.loads(run("instance", "list", "--state", "stopped", "--json").stdout)
    assert all(r["state"] == "stopped" for r in stopped["instances"])
    table = run("instance", "list").stdout
    assert table.splitlines()[0].split() == ["INSTANCE", "STATE", "FOR", "QUEUE", "HEALTH"]
    assert all(len(line) <= 80 for line in table.splitlines())

    assert "life1:" in run("instance", "start", "life1").stdout
    wait_until(lambda: admin.instance_get("life1")["state"] == "online")
    shown = json.loads(run("instance", "show", "life1", "--json").stdout)
    assert shown["instance_id"] == "life1" and shown["state"] == "online"
    text = run("instance", "show", "life1").stdout
    assert "breaker" in text and "conflicts" in text and "online" in text

    assert json.loads(run("instance", "stop", "life1", "--json").stdout)["state"] == "stopped"
    assert admin.instance_get("life1")["state"] == "stopped"
    run("instance", "restart", "life1")
    wait_until(lambda: admin.instance_get("life1")["state"] == "online")
    assert json.loads(run("instance", "reset", "life1", "--json").stdout)["instance_id"] == "life1"
    out = json.loads(run("instance", "logout", "life1", "--json").stdout)
    assert out["state"] == "logged_out"

    # delete asks first: "n" changes nothing, "y" deletes.
    refused = run("instance", "delete", "life1", input="n\n", code=1)
    assert "nothing deleted" in refused.stderr
    assert admin.instance_get("life1")["instance_id"] == "life1"
    run("instance", "delete", "life1", input="y\n")
    run("instance", "show", "life1", code=1)


def test_create_generates_an_id(run: Cli, admin: Client) -> None:
    new_id = run("instance", "create").stdout.strip()
    assert admin.instance_get(new_id)["driver"] == "sim"
    run("instance", "delete", new_id, "--yes")


def test_daemon_errors_exit_1_with_code_and_message(run: Cli, admin: Client) -> None:
    before = admin.instance_list()
    r = run("instance", "show", "nope", code=1)
    assert r.stderr.startswith("error: not_found: ")
    r = run("instance", "create", "i0", code=1)
    assert r.stderr.startswith("error: exists: ")
    r = run("instance", "create", "bad id!", code=1)
    assert r.stderr.startswith("error: bad_request: ")
    r = run("instance", "create", "x1", "--driver", "nosuch", code=1)
    assert "bad_request" in r.stderr
    assert admin.instance_list() == before  # bad input changed nothing


def test_usage_errors_exit_2(run: Cli) -> None:
    assert "Usage" in run("instance", "show", code=2).stderr
    run("instance", "list", "--state", "sleeping", code=2)
    run("nosuchcommand", code=2)
    run("instance", "create", "z9", "--setting", "novalue", code=2)
    run("status", "--timeout", "0", code=2)


def test_bad_token_is_unauthorized_with_a_hint(daemon: CliDaemon) -> None:
    env = {"WAZ_ENDPOINT": daemon.cfg.control_endpoint, "WAZ_TOKEN": "waz_wrong"}
    r = Cli(env)("status", code=1)
    assert r.stderr.startswith("error: unauthorized: ")
    assert "hint: token from WAZ_TOKEN" in r.stderr


def test_explicit_flags_beat_the_environment(daemon: CliDaemon) -> None:
    token = (daemon.cfg.state_dir / "admin.token").read_text().strip()
    env = {"WAZ_ENDPOINT": "ipc:///nonexistent/control.sock", "WAZ_TOKEN": "waz_wrong"}
    out = Cli(env)("status", "--json", "--endpoint", daemon.cfg.control_endpoint, "--token", token)
    assert json.loads(out.stdout)["instances"] >= 2


def test_config_file_gives_endpoint_and_state_dir(daemon: CliDaemon, tmp_path: Path) -> None:
    conf = tmp_path / "waz.toml"
    conf.write_text(
        f'[daemon]\nstate_dir = "{daemon.cfg.state_dir}"\n'
        f'runtime_dir = "{daemon.cfg.runtime_dir}"\n'
    )
    out = Cli({"WAZ_CONFIG": str(conf)})("status", "--json")
    assert json.loads(out.stdout)["instances"] >= 2
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon]\nstate_dri = 'x'\n")
    r = Cli({})("status", "--config", str(bad), code=2)
    assert "did you mean 'state_dir'" in r.stderr


def test_unreachable_exit_3(tmp_path: Path) -> None:
    r = Cli({"WAZ_TOKEN": "t"})("status", "--endpoint", "ipc:///nonexistent/control.sock", code=3)
    assert "ipc:///nonexistent/control.sock" in r.stderr
    assert "daemon running" in r.stderr and "permission" in r.stderr
    r = Cli({"WAZ_TOKEN": "t"})("status", "--endpoint", "bogus", code=3)
    assert "bogus" in r.stderr
    # Nobody listens on this loopback port: no reply within the timeout.
    r = Cli({"WAZ_TOKEN": "t"})(
        "status", "--endpoint", "tcp://127.0.0.1:9", "--timeout", "0.2", code=3
    )
    assert "tcp://127.0.0.1:9" in r.stderr


def test_stopped_daemon_exit_3(short_dir: Path) -> None:
    d = start_daemon(short_dir / "gone")
    env = {"WAZ_ENDPOINT": d.cfg.control_endpoint, "WAZ_STATE_DIR": str(d.cfg.state_dir)}
    Cli(env)("status", "--json")
    d.stop(timeout=5)
    r = Cli(env)("status", "--json", "--timeout", "0.2", code=3)
    assert d.cfg.control_endpoint in r.stderr


def test_tokens(run: Cli, daemon: CliDaemon) -> None:
    created = json.loads(run("token", "create", "acme", "--label", "panel", "--json").stdout)
    assert created["token"].startswith("waz_") and created["tenant"] == "acme"
    listed = json.loads(run("token", "list", "--json").stdout)["tokens"]
    assert created["token_id"] in [t["token_id"] for t in listed]
    assert all("token" not in t for t in listed)  # never the secret itself
    assert "acme" in run("token", "list").stdout

    # The tenant token works and sees only its tenant's instances.
    tenant = Cli({"WAZ_ENDPOINT": daemon.cfg.control_endpoint, "WAZ_TOKEN": created["token"]})
    assert json.loads(tenant("instance", "list", "--json").stdout) == {"instances": []}
    tenant("token", "list", code=1)  # admin only

    run("token", "revoke", created["token_id"])
    r = tenant("status", code=1)
    assert "unauthorized" in r.stderr
    run("token", "revoke", "zz", code=1)  # not a token id: bad_request
