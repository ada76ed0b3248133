"""instance.delete removes the stored session; instance.create refuses an id whose session file
is still there (issue 11 item 2), through the Dispatcher with a real store and fleet."""

from __future__ import annotations

import pytest

from tests.control.dispatch_util import Core
from waz_actors.drivers import sessions
from waz_actors.drivers.whatsmeow import session_db_path

pytest.importorskip("neonize")


def test_delete_removes_the_session_and_create_refuses_a_leftover(core: Core) -> None:
    state = core.daemon.cfg.state_dir
    shop = core.tenant("shop")
    shop.ok("instance.create", driver="whatsmeow", instance_id="wx1")  # stopped: no host yet
    db = session_db_path(state, "wx1")
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        db.with_name(db.name + suffix).write_bytes(b"login of shop's number")
    assert shop.ok("instance.delete", instance_id="wx1")["deleted"] is True
    assert not sessions.has_session("whatsmeow", state, "wx1")
    # someone else takes the id: a fresh instance, no login
    other = core.tenant("other")
    other.ok("instance.create", driver="whatsmeow", instance_id="wx1")
    other.ok("instance.delete", instance_id="wx1")
    # a leftover file (an older daemon's, a copied state dir) refuses the id, changing nothing
    db.write_bytes(b"old login")
    code, details = other.error("instance.create", driver="whatsmeow", instance_id="wx1")
    assert code == "exists" and details["field"] == "instance_id"
    assert str(db) in details["session"] and details["driver"] == "whatsmeow"
    reply = other.ask("instance.create", driver="whatsmeow", instance_id="wx1")
    assert "session file of a deleted instance" in reply["error"]["message"]
    assert "rm " in reply["error"]["message"]
    assert other.error("instance.get", instance_id="wx1")[0] == "not_found"
    db.unlink()
    assert other.ok("instance.create", driver="whatsmeow", instance_id="wx1")
