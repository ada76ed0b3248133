"""Messages between the daemon (a ROUTER) and its driver hosts (one DEALER each), msgpack maps.

daemon -> host:
  {"op": "open", "iid", "gen", "db", "proxy", "phone"?}  connect (pairing when unpaired)
  {"op": "close", "iid", "remove"?}                 stop it; `remove` deletes its database file
  {"op": "send", "iid", "mid", "to", "text", "media"?, "limits"?}   media: see host/media.py
  {"op": "logout", "iid"}
  {"op": "pair", "iid", "phone"}                    ask for a phone pairing code
  {"op": "query", "iid", "rid", "kind", "args"}     groups | contacts {numbers} | media {ref};
                                                    answered by a RequestDone event
  {"op": "ping", "seq"}
  {"op": "exit"}
host -> daemon:
  {"op": "hello", "pid"}
  {"op": "pong", "seq", "fds", "rss_kib", "threads", "sessions"}
  {"op": "event", "iid", "gen", "ev": <whatsmeow_events.to_wire>}
  {"op": "closed", "iid", "gen"}                    the session ended (asked for or not)

`gen` numbers the sessions of one instance so that late events of a closed session are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack

TO_HOST = {"open", "close", "send", "logout", "pair", "query", "ping", "exit"}
TO_POOL = {"hello", "pong", "event", "closed"}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "open": ("iid", "gen", "db", "proxy"),
    "close": ("iid",),
    "send": ("iid", "mid", "to", "text"),
    "logout": ("iid",),
    "pair": ("iid", "phone"),
    "query": ("iid", "rid", "kind", "args"),
    "ping": ("seq",),
    "exit": (),
    "hello": ("pid",),
    "pong": ("seq", "fds"),
    "event": ("iid", "gen", "ev"),
    "closed": ("iid", "gen"),
}


class ProtocolError(ValueError):
    """A frame that is not a valid host-protocol message."""


def pack(msg: dict[str, Any]) -> bytes:
    frame: bytes = msgpack.packb(msg, use_bin_type=True)
    return frame


def unpack(frame: bytes, allowed: set[str]) -> dict[str, Any]:
    try:
        msg = msgpack.unpackb(frame, raw=False)
    except Exception as e:
        raise ProtocolError(f"not msgpack: {e}") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"expected a map, got {type(msg).__name__}")
    op = msg.get("op")
    if op not in allowed:
        raise ProtocolError(f"unknown op {op!r}")
    missing = [k for k in _REQUIRED[op] if k not in msg]
    if missing:
        raise ProtocolError(f"{op}: missing {', '.join(missing)}")
    return msg


def pool_endpoint(runtime_dir: str | Path, pid: int) -> str:
    # One socket per daemon process: a restarted daemon never talks to an orphan's hosts. Its
    # directory is the pool's own (mode 0700): the runtime dir may be shared more widely.
    return f"ipc://{Path(runtime_dir).resolve()}/whatsmeow/pool-{pid}.sock"
