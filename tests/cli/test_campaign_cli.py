"""`waz-actors campaign ...` against a real daemon over its socket: CSV in, report out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import Cli
from tests.waiting import wait_until
from waz_actors.cli.watch import event_line
from waz_actors.control.client import Client


def test_csv_in_report_out(
    run: Cli, admin: Client, fresh: Callable[..., str], tmp_path: Path
) -> None:
    a, b = fresh(), fresh()
    path = tmp_path / "recipients.csv"
    lines = ["number,name"] + [f"6281300000{i:02d}1,Budi {i}" for i in range(12)]
    lines.append("628130000001" + "1,Budi again")  # a duplicate of row 0's number: dropped
    path.write_text("\n".join(lines) + "\n")
    out = run(
        "campaign",
        "create",
        "--csv",
        str(path),
        "--text",
        "{Halo|Hai} {name}",
        "--instances",
        f"{a},{b}",
        "--name",
        "promo",
        "--json",
    ).stdout
    made = json.loads(out)
    cid = made["campaign_id"]
    assert made["state"] == "draft" and made["added"] == 12 and made["duplicates"] == 1
    assert "draft" in run("campaign", "list").stdout
    run("campaign", "start", cid)
    wait_until(lambda: admin.campaign_get(cid)["state"] == "done", what="campaign done")
    shown = run("campaign", "show", cid).stdout
    assert "done" in shown and "sent 12" in shown and a in shown and b in shown
    report = list(csv.reader(io.StringIO(run("campaign", "report", cid, "--csv").stdout)))
    assert report[0] == ["number", "status", "message_id", "time", "error"]
    assert len(report) == 13 and {r[1] for r in report[1:]} == {"sent"}
    assert all(r[2] for r in report[1:])
    msg = admin.message_get(report[1][2])
    assert msg["text"] in ("Halo Budi 0", "Hai Budi 0")
    assert run("campaign", "pause", cid, code=1).stderr  # done: nothing to pause
    line = event_line(
        "campaign.state", {"campaign_id": cid, "state": "done", "counts": {"sent": 12}}
    )
    assert f"campaign {cid}" in line and "sent 12" in line


def test_missing_var_names_the_row(run: Cli, fresh: Callable[..., str], tmp_path: Path) -> None:
    a = fresh(online=False)
    path = tmp_path / "r.csv"
    path.write_text("to,name\n62813000001,Ani\n62813000002,\n")
    res = run(
        "campaign",
        "create",
        "--csv",
        str(path),
        "--text",
        "Hi {name} {city}",
        "--instances",
        a,
        code=1,
    )
    assert "recipients[0]" in res.stderr and "city" in res.stderr
