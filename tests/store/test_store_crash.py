"""An acknowledged message survives the process being killed right after the acknowledgement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from waz_actors.store import Store

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, signal, sys
from waz_actors.store import InstanceRecord, MessageRecord, Store

path, how = sys.argv[1], sys.argv[2]
s = Store(path)
s.open()
s.create_instance(InstanceRecord("i1", "t1", "sim", {}, "running", "online", 1.0, None, None,
                                 None, 1.0))

def msg(i):
    return MessageRecord(f"M{i:05d}", "i1", "t1", "551199", f"text {i}", None, "queued", 0, None,
                         None, f"key-{i}", 1.0 + i, 1.0 + i, None)

futures = [s.enqueue(msg(i), max_queue=10_000) for i in range(100)]
acked = [f.result()[0].message_id for f in futures]
s.update_message("M00000", "sending").result()
# more traffic in flight, never acknowledged: the kill lands in the middle of it
for i in range(100, 2100):
    s.enqueue(msg(i), max_queue=10_000)
sys.stdout.write(json.dumps(acked) + "\n")
sys.stdout.flush()
if how == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
os._exit(3)
"""


@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_acknowledged_messages_survive_kill(tmp_path: Path, how: str) -> None:
    db = tmp_path / "waz.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), how],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == (-signal.SIGKILL if how == "sigkill" else 3), proc.stderr
    acked = json.loads(proc.stdout.splitlines()[0])
    assert len(acked) == 100

    with Store(db) as s:
        for mid in acked:
            rec = s.get_message(mid)
            assert rec is not None, f"acknowledged {mid} lost"
            assert s.history(mid)[0]["status"] == "queued"
        first = s.get_message("M00000")
        assert first is not None and first.status == "sending"
        assert s.recover_sending() == 1
        first = s.get_message("M00000")
        assert first is not None and first.status == "queued"
        # whatever else made it is whole: every stored message has its history row
        totals = s.totals()
        assert totals["queued"] >= 100
        assert s.pending_count("i1") == totals["queued"]
        pending = s.pending_messages("i1")
        assert all(s.history(m.message_id) for m in pending[-5:])
