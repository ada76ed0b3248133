"""The seeds' original approach, as a small client of the networked simulator.

    .venv/bin/python bench/baseline.py --endpoint tcp://127.0.0.1:PORT --plan plan.json --out log

What the seeds' Node process does, reduced to the parts that matter (docs/design.md, "What it
is for"):

- a cron every 30 (daemon) seconds re-creates the socket of every session it believes dead, that
  is every session whose last status is not `open` (including one still connecting), and it does
  not close the socket it replaces;
- every socket's close handler reconnects at once after a 440 conflict, so two sockets of one
  number kick each other forever once the cron has made a second one;
- no queue: a send on a session that is not open fails, a send whose answer is an error fails,
  and a failed send is gone.

chaos.py runs it as a subprocess with the same instances, messages, fault rates and `kill -9`
moments as the daemon. Everything it does is appended to `--out` as JSON lines (flushed per
line, so a kill -9 loses nothing of the record): `start`, `state` (instance online or not),
`accepted` (the process took the send: message id), `result` (the sim's answer, ok or not).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from waz_actors.clock import RealClock
from waz_actors.drivers.base import (
    Banned,
    Conflict,
    Connected,
    Disconnected,
    DriverEvent,
    LoggedOut,
    OutgoingMessage,
    SendResult,
)
from waz_actors.drivers.simserver import RemoteSimNetwork

CRON_INTERVAL = 30.0  # daemon seconds, as in the seeds


@dataclass
class _Inst:
    instance_id: str
    status: str = "close"  # the cron's belief: connecting | open | close
    current: Any = None  # the socket sends go to (the newest created)
    live: set[int] = field(default_factory=set)  # sockets the sim has connected and not closed


class SeedFleet:
    """The seeds' session manager; `record` receives every fact as a JSON-able dict."""

    def __init__(self, network: Any, instance_ids: list[str], out: IO[str]) -> None:
        self.network = network
        self.instances = {iid: _Inst(iid) for iid in instance_ids}
        self._out = out
        self._lock = threading.RLock()
        self._socket_ids = iter(range(1, 1 << 62))
        self._pending: dict[str, int] = {}  # message id -> plan number

    def record(self, kind: str, **data: Any) -> None:
        with self._lock:
            self._out.write(json.dumps({"k": kind, "t": time.time(), **data}) + "\n")
            self._out.flush()

    def create_socket(self, inst: _Inst) -> None:
        """What both the cron and the conflict handler call; the old socket stays open."""
        with self._lock:
            sock_id = next(self._socket_ids)
            inst.status = "connecting"
            inst.current = self.network.open_session(
                inst.instance_id, lambda event: self._on_event(inst, sock_id, event)
            )

    def cron_tick(self) -> None:
        with self._lock:
            for inst in self.instances.values():
                if inst.status != "open":
                    self.create_socket(inst)

    def send(self, number: int, instance_id: str) -> None:
        inst = self.instances[instance_id]
        with self._lock:
            if inst.status != "open" or inst.current is None:
                self.record("refused", n=number, reason="session not open")
                return
            mid = "3EB0" + uuid.uuid4().hex[:16].upper()
            self._pending[mid] = number
            self.record("accepted", n=number, id=mid, i=instance_id)
            inst.current.send(OutgoingMessage(mid, "6281234567890", f"baseline #{number}"))

    def _set_live(self, inst: _Inst, sock_id: int, live: bool) -> None:
        was = bool(inst.live)
        if live:
            inst.live.add(sock_id)
        else:
            inst.live.discard(sock_id)
        if bool(inst.live) != was:
            self.record("state", i=inst.instance_id, online=bool(inst.live))

    def _on_event(self, inst: _Inst, sock_id: int, event: DriverEvent) -> None:
        with self._lock:
            if isinstance(event, Connected):
                inst.status = "open"
                self._set_live(inst, sock_id, True)
            elif isinstance(event, Conflict):
                self._set_live(inst, sock_id, False)
                self.create_socket(inst)  # reconnect at once: the seeds' 440 fight
            elif isinstance(event, Disconnected | Banned | LoggedOut):
                self._set_live(inst, sock_id, False)
                inst.status = "close"  # the cron will re-create it
            elif isinstance(event, SendResult):
                number = self._pending.pop(event.message_id, None)
                if number is not None:
                    self.record("result", n=number, id=event.message_id, ok=event.ok)


def run(plan: dict[str, Any], endpoint: str, out: IO[str]) -> None:
    """Follow the plan from now on: sends whose time has passed were refused while we were down."""
    scale = float(plan["time_scale"])
    start = float(plan["start"])
    network = RemoteSimNetwork(endpoint, clock=RealClock(scale))
    fleet = SeedFleet(network, list(plan["instances"]), out)
    fleet.record("start", pid_start=True)
    for inst in fleet.instances.values():
        fleet.create_socket(inst)
    stop = threading.Event()

    def cron() -> None:
        while not stop.wait(CRON_INTERVAL * scale):
            fleet.cron_tick()

    threading.Thread(target=cron, name="cron", daemon=True).start()
    for number, offset, instance_id in plan["sends"]:
        due = start + float(offset)
        if due < time.time():
            continue  # this process was down at that moment
        time.sleep(max(0.0, due - time.time()))  # the plan's clock, not a synchronisation
        fleet.send(int(number), str(instance_id))
    end = start + float(plan["end"])
    time.sleep(max(0.0, end - time.time()))
    stop.set()
    network.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--endpoint", required=True, help="the sim server, e.g. tcp://127.0.0.1:5590")
    p.add_argument("--plan", required=True, help="JSON plan written by chaos.py")
    p.add_argument("--out", required=True, help="JSON-lines record (appended)")
    a = p.parse_args(argv)
    try:
        plan = json.loads(Path(a.plan).read_text())
        for key in ("time_scale", "start", "end", "instances", "sends"):
            if key not in plan:
                raise ValueError(f"plan: missing {key!r}")
    except (OSError, ValueError) as e:
        print(f"baseline: bad plan: {e}", file=sys.stderr)
        return 2
    with open(a.out, "a", encoding="utf-8") as out:
        run(plan, a.endpoint, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
