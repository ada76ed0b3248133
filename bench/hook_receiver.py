"""The benches' webhook receiver: HTTP/1.1 keep-alive on 127.0.0.1, answers 204 to every POST.

    python bench/hook_receiver.py PORT [LATENCY_LOG] [--streams]

It stands for the panel's server, which runs on another machine in production; on the one small
box a bench has, its CPU competes with the daemon's, so it should cost as little as a receiver
can. The default is an asyncio.Protocol that parses the bytes as they come (one callback per
read, no task per request); `--streams` is the earlier asyncio-streams receiver (a coroutine
resumed per readuntil/readexactly), kept to measure what the change saves. Both answer the same
thing to the same requests: the change is measurement hygiene, not a change of what is measured
on the daemon's side (bench/webhooks.py reports the receiver's CPU per delivery apart).
With LATENCY_LOG, each request's arrival time minus the event's `time` is appended to it.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from typing import IO

ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


def _latency(log: IO[str] | None, body: bytes) -> None:
    if log is not None:
        i = body.find(b'"time":') + 7
        log.write(f"{time.time() - float(body[i : body.find(b',', i)])}\n")
        log.flush()


def _content_length(head: bytes) -> int:
    i = head.lower().find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    j = head.find(b"\r\n", i + 2)
    return int(head[i + 17 : j if j >= 0 else len(head)])


class Lean(asyncio.Protocol):
    def __init__(self, log: IO[str] | None) -> None:
        self.log = log
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            start = end + 4
            stop = start + _content_length(buf[:end])
            if len(buf) < stop:
                break
            _latency(self.log, buf[start:stop])
            out.append(ANSWER)
            buf = buf[stop:]
        self.buf = buf
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def streams(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, log: IO[str] | None
) -> None:
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(_content_length(head[:-4]))
            _latency(log, body)
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(argv: list[str]) -> None:
    use_streams = "--streams" in argv
    args = [a for a in argv if a != "--streams"]
    port = int(args[0])
    log = open(args[1], "a") if len(args) > 1 else None  # noqa: SIM115 (lives as the process)
    loop = asyncio.get_running_loop()
    if use_streams:
        server = await asyncio.start_server(
            lambda r, w: streams(r, w, log), "127.0.0.1", port, backlog=1024
        )
    else:
        server = await loop.create_server(lambda: Lean(log), "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
