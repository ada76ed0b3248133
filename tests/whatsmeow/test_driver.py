"""WhatsmeowDriver's own rules, fed as the pool's I/O thread feeds it (no host process needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("neonize")

from tests.whatsmeow.conftest import Sink, make_driver, small_config
from waz_actors.drivers.base import Disconnected, LoggedOut, OutgoingMessage, Receipt, SendResult
from waz_actors.drivers.host.client import HostPool
from waz_actors.drivers.whatsmeow import HOST_DIED, remove_session, session_db_path
from waz_actors.drivers.whatsmeow_events import to_wire


@pytest.fixture
def pool(workdir: Path) -> HostPool:
    return HostPool(small_config(), workdir / "run", workdir / "state")  # never started


def test_receipts_are_translated_to_our_message_id(pool: HostPool, workdir: Path):
    drv, sink = make_driver(pool, "d1", "socks5://127.0.0.1:9", workdir)
    drv.connect()
    drv.send(OutgoingMessage("3EB0OURS", "4915112345678", text="hi"))
    drv.on_host_event(1, to_wire(SendResult("3EB0OURS", ok=True, wa_id="3EB0THEIRS")))
    drv.on_host_event(1, to_wire(Receipt("", "delivered", wa_id="3EB0THEIRS")))
    # sent before a restart: passed on by WhatsApp's id, for the instance to find in the store
    drv.on_host_event(1, to_wire(Receipt("", "read", wa_id="3EB0EARLIER")))
    assert sink.events == [
        SendResult("3EB0OURS", ok=True, wa_id="3EB0THEIRS"),
        Receipt("3EB0OURS", "delivered", wa_id="3EB0THEIRS"),
        Receipt("", "read", wa_id="3EB0EARLIER"),
    ]


def test_the_driver_declares_resends_are_not_deduplicated(pool: HostPool, workdir: Path):
    drv, _ = make_driver(pool, "d9", "socks5://127.0.0.1:9", workdir)
    assert drv.dedup_resends is False


def test_host_death_reports_in_flight_sends_as_outcome_unknown(pool: HostPool, workdir: Path):
    drv, sink = make_driver(pool, "d2", "socks5://127.0.0.1:9", workdir)
    drv.connect()
    drv.send(OutgoingMessage("m1", "4915112345678", text="hi"))
    drv.on_host_died(1)
    drv.on_host_died(1)  # a second report for the same session says nothing more
    [sr, disc] = sink.events
    assert isinstance(sr, SendResult) and not sr.ok and not sr.permanent
    assert sr.error is not None and sr.error.startswith("outcome unknown")
    assert disc == Disconnected(code=None, reason=HOST_DIED, transient=True)


def test_nothing_is_emitted_after_disconnect(pool: HostPool, workdir: Path):
    drv, sink = make_driver(pool, "d3", "socks5://127.0.0.1:9", workdir)
    drv.connect()
    drv.disconnect()
    drv.disconnect()  # idempotent
    drv.on_host_event(1, to_wire(Disconnected(None, "late", True)))
    drv.on_host_died(1)
    drv.on_session_closed(1)
    assert sink.events == []


def test_logout_without_a_session_removes_the_database(pool: HostPool, workdir: Path):
    db = session_db_path(workdir / "state", "d4")
    db.parent.mkdir(parents=True)
    db.write_bytes(b"x")
    drv, sink = make_driver(pool, "d4", "socks5://127.0.0.1:9", workdir)
    drv.logout()
    assert sink.events == [LoggedOut(reason="logout requested")] and not db.exists()
    remove_session(workdir / "state", "d4")  # idempotent


def test_a_bad_event_from_a_host_is_dropped(pool: HostPool, workdir: Path):
    drv, sink = make_driver(pool, "d5", "socks5://127.0.0.1:9", workdir)
    drv.connect()
    drv.on_host_event(1, {"type": "Bogus"})
    assert sink.events == [] and isinstance(sink, Sink)


def test_queries_and_incoming_messages_pass_through(pool: HostPool, workdir: Path):
    from waz_actors.drivers.base import IncomingMessage, ListGroups, RequestDone

    drv, sink = make_driver(pool, "d5", "socks5://127.0.0.1:9", workdir)
    drv.query(ListGroups("q0"))  # no session: answered at once
    assert sink.events == [RequestDone("q0", error="not connected")]
    drv.connect()
    drv.query(ListGroups("q1"))  # goes to the host (never started here)
    msg = IncomingMessage("W1", "1@s.whatsapp.net", "1@s.whatsapp.net", 1.0, text="hi")
    drv.on_host_event(1, to_wire(msg))
    drv.on_host_event(1, to_wire(RequestDone("q1", [{"id": "1@g.us"}])))
    # the host's "no session" answer comes with generation -1, like a send's
    drv.on_host_event(-1, to_wire(RequestDone("q2", error="no session on host")))
    assert sink.events[1:] == [
        msg,
        RequestDone("q1", [{"id": "1@g.us"}]),
        RequestDone("q2", error="no session on host"),
    ]
