"""inbox, download, groups, contacts against a real daemon (sim driver, real sockets)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.waiting import wait_until
from waz_actors.cli.watch import event_line
from waz_actors.control.client import Client

PHOTO = b"\x89PNG fake image bytes"


@pytest.fixture
def media_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PHOTO)))
            self.end_headers()
            self.wfile.write(PHOTO)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.png"
    server.shutdown()
    server.server_close()


def test_inbox_and_download(
    run: Cli, admin: Client, fresh: Callable[..., str], media_server: str, tmp_path: Path
) -> None:
    iid = fresh()
    assert run("inbox", iid).stdout.strip() == "no messages"
    admin.sim_fault(iid, "incoming", **{"from": "5511977776666", "text": "hello daemon"})
    media = {"url": media_server, "mime": "image/png", "filename": "../../photo.png"}
    admin.sim_fault(iid, "incoming", media=media)
    wait_until(lambda: len(admin.inbox_list(iid)["messages"]) == 2, what="two received")
    text = run("inbox", iid).stdout
    assert "hello daemon" in text and "5511977776666@s.whatsapp.net" in text
    assert "image/png" in text
    doc = json.loads(run("inbox", iid, "--json", "--limit", "1").stdout)
    assert len(doc["messages"]) == 1 and doc["next"] == doc["messages"][0]["inbox_id"]
    second = json.loads(run("inbox", iid, "--json", "--after", doc["next"]).stdout)["messages"]
    inbox_id = second[0]["inbox_id"]
    out = tmp_path / "got.png"
    run("download", iid, inbox_id, "-o", str(out))
    assert out.read_bytes() == PHOTO  # fetched from the URL by the sim, on demand
    line = event_line(f"message.{iid}.in", second[0])
    assert "received from" in line and "image/png" in line


def test_groups_and_contacts(run: Cli, fresh: Callable[..., str]) -> None:
    iid = fresh()
    text = run("groups", iid).stdout
    assert "Sim group 1" in text and "@g.us" in text
    doc = json.loads(run("contacts", iid, "5511900000001", "+5511900000020", "--json").stdout)
    assert [c["on_whatsapp"] for c in doc["contacts"]] == [True, False]
    bad = run("contacts", iid, "123", code=1)
    assert "bad_request" in bad.stderr and "field: numbers" in bad.stderr
    offline = fresh(online=False)
    assert "invalid_state" in run("groups", offline, code=1).stderr
