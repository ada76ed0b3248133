"""Commands that work on local files (keys, config check, backup) or start processes
(sim serve), and the fast client path (`status --json` imports no daemon internals)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import zmq.auth

from tests.cli.conftest import Cli, CliDaemon, start_daemon
from tests.waiting import wait_until
from waz_actors.control.client import Client

PY = sys.executable
TO = "6281234567890"


def test_keys_generate(tmp_path: Path) -> None:
    run = Cli({})
    doc = json.loads(run("keys", "generate", "--dir", str(tmp_path), "--json").stdout)
    secret_file, public_file = tmp_path / "server.key_secret", tmp_path / "server.key"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    public, secret = zmq.auth.load_certificate(str(secret_file))
    assert public.decode() == doc["public_key"] and secret is not None
    assert zmq.auth.load_certificate(str(public_file)) == (public, None)
    assert zmq.curve_public(secret) == public

    before = secret_file.read_bytes()
    r = run("keys", "generate", "--dir", str(tmp_path), code=2)
    assert "--force" in r.stderr
    assert secret_file.read_bytes() == before  # refused: nothing overwritten
    run("keys", "generate", "--dir", str(tmp_path), "--name", "../evil", code=2)
    run("keys", "generate", "--dir", str(tmp_path), "--force")
    assert secret_file.read_bytes() != before
    run("keys", "generate", "--dir", str(tmp_path), "--name", "client1")
    assert (tmp_path / "client1.key").exists()


def test_config_check(tmp_path: Path) -> None:
    run = Cli({})
    good = tmp_path / "good.toml"
    good.write_text('[daemon]\nstate_dir = "/var/lib/waz"\n\n[[instances]]\nid = "shop1"\n')
    out = run("config", "check", str(good)).stdout
    assert out.startswith("ok: ") and "1 instance(s)" in out
    doc = json.loads(run("config", "check", str(good), "--json").stdout)
    assert doc["instances"] == ["shop1"] and doc["database"] == "/var/lib/waz/waz.db"

    bad = tmp_path / "bad.toml"
    bad.write_text("[queue]\nmax_retries = -1\n")
    r = run("config", "check", str(bad), code=2)
    assert r.stderr.count("\n") == 1 and "queue.max_retries" in r.stderr
    bad.write_text("[conection]\n")
    assert "did you mean 'connection'" in run("config", "check", str(bad), code=2).stderr
    bad.write_text("not = [toml")
    assert "not valid TOML" in run("config", "check", str(bad), code=2).stderr
    assert "cannot read" in run("config", "check", str(tmp_path / "missing.toml"), code=2).stderr


def test_backup_while_running(
    daemon: CliDaemon, admin: Client, fresh: Callable[..., str], tmp_path: Path
) -> None:
    iid = fresh()
    mid = admin.message_send(iid, TO, "in the backup")["message_id"]
    wait_until(lambda: admin.message_get(mid)["status"] == "sent")
    dest = tmp_path / "copy.db"
    run = Cli({"WAZ_STATE_DIR": str(daemon.cfg.state_dir), "WAZ_CONFIG": ""})
    doc = json.loads(run("backup", str(dest), "--json").stdout)
    assert doc["integrity"] == "ok" and doc["pages"] > 0
    with sqlite3.connect(dest) as db:
        row = db.execute("SELECT status FROM messages WHERE message_id = ?", (mid,)).fetchone()
        assert row == ("sent",)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert admin.ping()["pong"] is True  # the daemon kept running

    size = dest.stat().st_size
    assert "--force" in run("backup", str(dest), code=2).stderr
    assert dest.stat().st_size == size
    assert "backup:" in run("backup", str(dest), "--force").stdout
    missing = run("backup", str(tmp_path / "x.db"), "--state-dir", str(tmp_path / "nope"), code=2)
    assert "no database" in missing.stderr
    assert not (tmp_path / "nope").exists()  # never creates an empty database
    live = daemon.cfg.state_dir / "waz.db"
    run("backup", str(live), "--db", str(live), "--force", code=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sim_serve_runs_until_sigterm(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    proc = subprocess.Popen(
        [PY, "-m", "waz_actors", "sim", "serve", "--endpoint", endpoint, "--time-scale", "0.01",
         "--faults", "conflict=2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"sim server listening on {endpoint}"
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    bad = subprocess.run(
        [PY, "-m", "waz_actors", "sim", "serve", "--endpoint", endpoint, "--faults", "meteor=1"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert bad.returncode == 2 and "meteor" in bad.stderr


def test_status_json_subprocess_imports_no_daemon_internals(daemon: CliDaemon) -> None:
    env = {
        **os.environ,
        "WAZ_ENDPOINT": daemon.cfg.control_endpoint,
        "WAZ_STATE_DIR": str(daemon.cfg.state_dir),
    }
    r = subprocess.run(
        [PY, "-X", "importtime", "-m", "waz_actors", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["instances"] >= 2
    modules = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    for heavy in ("loguru", "pykka", "neonize", "waz_actors.store", "waz_actors.actors"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in modules), heavy
    assert "zmq" in modules  # the measurement itself worked


def test_shell_completion_bash_and_zsh() -> None:
    script = Path(PY).with_name("waz-actors")
    assert script.exists(), "the console script is installed with the package"
    env = {**os.environ, "_WAZ_ACTORS_COMPLETE": "bash_source"}
    out = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=20)
    assert "_waz_actors_completion()" in out.stdout
    env = {**os.environ, "_WAZ_ACTORS_COMPLETE": "zsh_source"}
    out = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=20)
    assert out.stdout.startswith("#compdef waz-actors")
    env = {
        **os.environ,
        "_WAZ_ACTORS_COMPLETE": "bash_complete",
        "COMP_WORDS": "waz-actors queue p",
        "COMP_CWORD": "2",
    }
    out = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=20)
    assert out.stdout.split() == ["plain,purge"]


def test_curve_keys_from_keys_generate_reach_a_tcp_daemon(short_dir: Path) -> None:
    keys, clients = short_dir / "keys", short_dir / "clients"
    clients.mkdir()
    run = Cli({})
    run("keys", "generate", "--dir", str(keys), "--name", "server")
    run("keys", "generate", "--dir", str(clients), "--name", "ops")
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    d = start_daemon(
        short_dir / "curve",
        control={
            "tcp_endpoints": (endpoint,),
            "curve_secret_key_file": str(keys / "server.key_secret"),
            "curve_clients_dir": str(clients),
        },
    )
    try:
        token = (d.cfg.state_dir / "admin.token").read_text().strip()
        cli = Cli({"WAZ_ENDPOINT": endpoint, "WAZ_TOKEN": token})
        ok = cli("status", "--json", "--server-key", str(keys / "server.key"),
                 "--client-key", str(clients / "ops.key_secret"))  # fmt: skip
        assert json.loads(ok.stdout)["instances"] == 2
        # A key pair the server does not know is not let in: no reply, exit 3.
        run("keys", "generate", "--dir", str(keys), "--name", "stranger")
        cli("status", "--timeout", "0.3", "--server-key", str(keys / "server.key"),
            "--client-key", str(keys / "stranger.key_secret"), code=3)  # fmt: skip
        cli("status", "--server-key", str(keys / "server.key"), code=2)  # half a key pair
        cli("status", "--server-key", str(keys / "nope.key"),
            "--client-key", str(clients / "ops.key_secret"), code=2)  # fmt: skip
    finally:
        d.stop(timeout=5)
