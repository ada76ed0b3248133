"""A real HTTP server on 127.0.0.1 (http.server in a thread) serving media test files."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n" + b"x" * 3000


class MediaServer:
    """Routes: path -> (status, headers, body or a callable writing the body)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], Any]] = {}
        self.hits: dict[str, int] = {}
        self.written: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                status, headers, body = server.routes.get(self.path, (404, {}, b"not here"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    try:
                        body(self, server)
                    except OSError:
                        pass

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: Any, status: int = 200, **headers: str) -> str:
        self.routes[path] = (status, {k.replace("_", "-"): v for k, v in headers.items()}, body)
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def endless(path: str) -> Callable[[BaseHTTPRequestHandler, MediaServer], None]:
    """A body with no Content-Length that never ends (until the client hangs up)."""

    def write(h: BaseHTTPRequestHandler, server: MediaServer) -> None:
        block = b"\0" * 65536
        for _ in range(2000):  # 128 MiB at most
            h.wfile.write(block)
            server.written[path] = server.written.get(path, 0) + len(block)

    return write


def stall(seconds: float) -> Callable[[BaseHTTPRequestHandler, MediaServer], None]:
    """A few bytes, then silence."""

    def write(h: BaseHTTPRequestHandler, server: MediaServer) -> None:
        h.wfile.write(JPEG[:10])
        h.wfile.flush()
        time.sleep(seconds)

    return write
