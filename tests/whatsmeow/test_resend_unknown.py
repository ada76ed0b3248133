"""A host killed mid-send, seen by a real Instance through the real WhatsmeowDriver: the pool's
host-death callback is the boundary (tests/whatsmeow/test_host_kill.py kills real hosts to show
the pool calls it). whatsmeow cannot reuse the WhatsApp id, so the resend is marked, or, with
queue.resend_unknown = "never", not made."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from tests.core.harness import Bench, quick_config
from tests.whatsmeow.conftest import small_config
from waz_actors.config import Config
from waz_actors.drivers.base import Connected, SendResult
from waz_actors.drivers.host.client import HostPool
from waz_actors.drivers.whatsmeow import WhatsmeowDriver, make_whatsmeow_factory
from waz_actors.drivers.whatsmeow_events import to_wire
from waz_actors.store.records import InstanceRecord
from waz_actors.types import InstanceState as S
from waz_actors.types import MessageStatus as M


def whatsmeow_bench(tmp: Path, cfg: Config) -> Bench:
    cfg = dataclasses.replace(cfg, whatsmeow=small_config().whatsmeow)
    b = Bench(tmp, cfg)
    pool = HostPool(cfg, tmp / "run", tmp / "state")  # never started: the test plays the host
    b.deps.drivers["whatsmeow"] = make_whatsmeow_factory(pool)
    now = time.time()
    rec = InstanceRecord(
        "w1", "t1", "whatsmeow", {}, "running", "stopped", now, None, None, None, now
    )
    b.store.create_instance(rec)
    from waz_actors.actors.instance import Instance

    b.instance = Instance(b.deps, rec, b.inbox.append)
    b.instance.boot()
    b.settle()
    return b


def driver(b: Bench) -> WhatsmeowDriver:
    drv = b.instance.connection.driver
    assert isinstance(drv, WhatsmeowDriver)
    return drv


def host_says(b: Bench, body: dict) -> None:
    drv = driver(b)
    drv.on_host_event(drv._gen, body)
    b.settle()


def connect(b: Bench) -> None:
    b.run_until(lambda: b.instance.connection.driver is not None, limit=3600)
    host_says(b, to_wire(Connected("4915100000000@s.whatsapp.net")))
    assert b.instance.state == S.ONLINE


def kill_mid_send(b: Bench) -> str:
    connect(b)
    msg = b.send(instance_id="w1")
    assert b.status_of(msg.message_id) == M.SENDING
    drv = driver(b)
    drv.on_host_died(drv._gen)  # what HostPool calls when the host process is gone
    b.settle()
    return msg.message_id


@pytest.mark.parametrize("policy", ["always", "never"])
def test_host_killed_mid_send(tmp_path: Path, policy: str) -> None:
    b = whatsmeow_bench(tmp_path, quick_config(resend_unknown=policy))
    try:
        mid = kill_mid_send(b)
        assert b.instance.state == S.BACKOFF
        b.flush()
        assert b.store.get_message(mid).outcome_unknown is True
        connect(b)
        if policy == "never":
            b.flush()
            rec = b.store.get_message(mid)
            assert rec.status == M.UNKNOWN and not rec.possible_duplicate
            return
        assert b.status_of(mid) == M.SENDING  # resent ...
        host_says(b, to_wire(SendResult(mid, ok=True, wa_id="3EB0NEWID")))
        b.flush()
        rec = b.store.get_message(mid)
        assert rec.status == M.SENT and rec.possible_duplicate is True  # ... and marked
        assert rec.wa_id == "3EB0NEWID"
    finally:
        b.close()
