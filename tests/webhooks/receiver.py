"""A real HTTP receiver on 127.0.0.1 for webhook tests: records every request, answers what the
test says (a status code, headers), and can go down and come back on the same port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from waz_actors.policy.webhooks import verify


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.raw))

    def signed_by(self, secret: str) -> bool:
        return verify(secret, self.raw, self.headers.get("x-waz-signature", ""))


# An answer: (status, extra headers). The default accepts everything.
Responder = Callable[[Hit], tuple[int, dict[str, str]]]


class Receiver:
    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.respond: Responder = lambda hit: (200, {})
        self._lock = threading.Lock()
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self._server: ThreadingHTTPServer | None = None
        self.up()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                hit = Hit(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(n)
                )
                with receiver._lock:
                    receiver.hits.append(hit)
                code, headers = receiver.respond(hit)
                payload = b"ok" if code < 300 else b"x" * 1000  # a long answer is cut to a prefix
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [h.body for h in self.hits if path is None or h.path == path]

    def of(self, path: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.path == path]

    def close(self) -> None:
        self.down()
