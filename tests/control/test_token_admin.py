"""token.rotate_admin through the Dispatcher (issue 11 item 3), and the new config keys."""

from __future__ import annotations

import pytest

from tests.control.dispatch_util import Caller, Core
from waz_actors.config import ConfigError, parse
from waz_actors.control.auth import read_admin_token


def test_rotate_admin_through_the_dispatcher(core: Core) -> None:
    acme = core.tenant("acme")
    assert acme.error("token.rotate_admin") == ("unauthorized", {"field": "token"})
    assert core.admin.error("token.rotate_admin", x=1) == ("bad_request", {"field": "x"})
    made = core.admin.ok("token.rotate_admin")
    assert made["revoked"] == 1 and made["token"] == read_admin_token(core.daemon.cfg.state_dir)
    assert core.admin.error("ping")[0] == "unauthorized"  # the old admin token, next request
    new = Caller(core.dispatcher, made["token"])
    tokens = new.ok("token.list")["tokens"]
    assert [(t["admin"], t["revoked"]) for t in tokens if t["admin"]] == [
        (True, True),
        (True, False),
    ]
    old_id = next(t["token_id"] for t in tokens if t["admin"] and t["revoked"])
    assert new.ok("token.revoke", token_id=old_id)["revoked"] is True  # an old one: allowed
    assert new.error("token.revoke", token_id=made["token_id"])[0] == "invalid_state"
    assert acme.ok("ping")["pong"] is True  # tenant tokens are untouched


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("control", "rate_limit", -1.0),
        ("control", "rate_burst", 0),
        ("control", "max_reply_bytes", 1000),
        ("tenants", "max_instances", -1),
        ("tenants", "max_instance", 3),
    ],
)
def test_new_config_keys_are_checked(section: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        parse({section: {key: value}})


def test_new_config_defaults() -> None:
    cfg = parse({})
    assert cfg.tenants.max_instances == 100
    assert (cfg.control.rate_limit, cfg.control.rate_burst) == (1000.0, 2000)
    assert cfg.control.max_reply_bytes == 16 * 1024 * 1024
