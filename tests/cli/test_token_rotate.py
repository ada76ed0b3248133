"""`waz-actors token rotate-admin` (issue 11 item 3): online through the daemon, offline on
the state directory; either way the old admin token is refused from the next request on.
And `--token` on the command line warns (item 17)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, start_daemon
from waz_actors.control.auth import read_admin_token
from waz_actors.control.client import Client, ClientError


def env(d: object, **extra: str) -> dict[str, str]:
    cfg = d.cfg  # type: ignore[attr-defined]
    return {
        "WAZ_ENDPOINT": cfg.control_endpoint,
        "WAZ_STATE_DIR": str(cfg.state_dir),
        "WAZ_TOKEN": "",
        "WAZ_CONFIG": "",
        "WAZ_EVENTS_ENDPOINT": "",
        **extra,
    }


def test_rotate_admin_online_and_offline(short_dir: Path) -> None:
    d = start_daemon(short_dir / "rot")
    state = d.cfg.state_dir
    try:
        old = read_admin_token(state)
        with Client(d.cfg.control_endpoint, old, timeout=5) as c:
            c.ping()  # the daemon has the old token cached now
            run = Cli(env(d))
            # offline while the daemon runs is refused: it would not see the change
            refused = run("token", "rotate-admin", "--offline", code=1)
            assert "in use by another waz-actors daemon" in refused.stderr
            assert read_admin_token(state) == old

            doc = json.loads(run("token", "rotate-admin", "--json").stdout)
            assert doc["how"] == "by the daemon" and doc["revoked"] == 1 and "token" not in doc
            new = read_admin_token(state)
            assert new != old and stat.S_IMODE((state / "admin.token").stat().st_mode) == 0o600
            with pytest.raises(ClientError) as e:
                c.ping()  # the very next request with the old token
            assert e.value.code == "unauthorized"
        with Client(d.cfg.control_endpoint, new, timeout=5) as c:
            assert c.ping()["pong"] is True
    finally:
        d.stop(timeout=5)

    # no daemon: rotates in the state directory; the next start refuses the old token
    run = Cli(env(d))
    out = run("token", "rotate-admin", "--show")
    newer = read_admin_token(state)
    assert out.stdout.strip() == newer and "rotated offline" in out.stderr
    d2 = start_daemon(short_dir / "rot")
    try:
        for token, ok in ((old, False), (new, False), (newer, True)):
            with Client(d2.cfg.control_endpoint, token, timeout=5) as c:
                if ok:
                    assert c.ping()["pong"] is True
                else:
                    with pytest.raises(ClientError, match="unauthorized"):
                        c.ping()
    finally:
        d2.stop(timeout=5)


def test_token_on_the_command_line_warns(run: Cli) -> None:
    token = read_admin_token(run.env["WAZ_STATE_DIR"])
    out = run("status", "--token", token)
    assert "warning: --token" in out.stderr and "WAZ_TOKEN" in out.stderr
    quiet = Cli({**run.env, "WAZ_TOKEN": token})("status")
    assert "warning" not in quiet.stderr
