"""Wire protocol version 1: envelope codec, error replies and the command registry.

Only msgpack and the shared errors are imported here, so the client library (and the CLI on
top of it) can use this module without loading actors, the store or loguru.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import msgpack

from waz_actors.errors import BadRequest, UnknownCommand, UnsupportedVersion, WazError

VERSION = 1
SUPPORTED_VERSIONS = (1,)

# Decoder limits. The frame itself is bounded by ZMQ_MAXMSGSIZE; these bound what one frame can
# make us allocate (a 1 MiB frame must not become a 100-million-entry map) and how deep a
# validator may have to recurse.
MAX_DEPTH = 16
MAX_MAP_LEN = 1024
MAX_ARRAY_LEN = 10_000
MAX_ID_LEN = 128
ENVELOPE_KEYS = frozenset({"v", "id", "cmd", "token", "args"})


@dataclass(frozen=True, slots=True)
class Request:
    v: int
    id: str | int
    cmd: str
    token: str | None
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Later:
    """A handler's answer that comes when `future` resolves, as `shape(result)`: a reply
    without a second Future and its lock per request (message.send is the hot path)."""

    future: Future[Any]
    shape: Callable[[Any], Any]


class ProtocolError(WazError):
    """A request that cannot be dispatched; carries the request id if one could be read."""

    def __init__(self, error: WazError, request_id: str | int | None = None) -> None:
        super().__init__(error.message, error.details)
        self.code = error.code
        self.request_id = request_id


# -- codec ----------------------------------------------------------------------------------


def unpack(frame: bytes, max_size: int = 1 << 20) -> Any:
    """Decode one msgpack object strictly; raise BadRequest naming what was wrong."""
    if not frame:
        raise BadRequest("empty frame", {"field": "frame"})
    try:
        obj = msgpack.unpackb(
            frame,
            raw=False,  # str must be valid UTF-8: invalid bytes raise, never pass through
            strict_map_key=True,
            max_str_len=max_size,
            max_bin_len=max_size,
            max_array_len=MAX_ARRAY_LEN,
            max_map_len=MAX_MAP_LEN,
            max_ext_len=0,  # ext types have no meaning in this protocol
        )
    except UnicodeDecodeError:
        raise BadRequest("a string is not valid UTF-8", {"field": "frame"}) from None
    except msgpack.ExtraData:
        raise BadRequest("extra bytes after the msgpack object", {"field": "frame"}) from None
    except ValueError as e:
        if "NoneType is not allowed for map key" in str(e):
            raise BadRequest(NIL_KEY, {"field": "frame"}) from None
        if "is not allowed for map key" in str(e):
            raise BadRequest(f"map keys must be strings: {e}", {"field": "frame"}) from None
        raise BadRequest(f"not valid msgpack: {e}", {"field": "frame"}) from None
    except (TypeError, msgpack.UnpackException) as e:
        # StackError (too deep for the C decoder), size limits, truncated data, bad map keys.
        raise BadRequest(f"not valid msgpack: {e}", {"field": "frame"}) from None
    except Exception as e:  # the decoder must never take the server down
        raise BadRequest(f"not valid msgpack: {type(e).__name__}", {"field": "frame"}) from None
    _check_plain(obj)
    return obj


NIL_KEY = (
    "a map has a nil key: php-msgpack packs a PHP object (or a null array key) that way;"
    " send an associative array with string keys"
)


def _check_plain(root: Any) -> None:
    """Reject nesting deeper than MAX_DEPTH, non-plain values and map keys that are not
    strings; iterative, no recursion.

    Runs on every request: msgpack.unpackb only builds exact dicts and lists, so exact type
    checks find every container without the cost of isinstance on each value. strict_map_key
    still lets bin (bytes) keys through: a map mixing bytes and str keys cannot even be sorted,
    so no later step may meet one."""
    if type(root) is not dict and type(root) is not list:
        if not isinstance(root, str | bytes | int | float | bool | None):
            raise BadRequest(f"unsupported msgpack type {type(root).__name__}", {"field": "frame"})
        return
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth >= MAX_DEPTH:
            raise BadRequest(f"nesting deeper than {MAX_DEPTH}", {"field": "frame"})
        if type(obj) is dict:
            for k in obj:
                if type(k) is not str:
                    raise BadRequest(
                        f"map keys must be strings, got a {type(k).__name__} key"
                        " (pack keys as msgpack str, not bin)",
                        {"field": "frame"},
                    )
        for x in obj.values() if type(obj) is dict else obj:
            if type(x) is dict or type(x) is list:
                stack.append((x, depth + 1))


def pack(obj: Any) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def decode_request(frame: bytes, max_size: int = 1 << 20) -> Request:
    """Frame -> Request, or ProtocolError carrying the id when it could be read."""
    try:
        obj = unpack(frame, max_size)
    except WazError as e:
        raise ProtocolError(e) from None
    if not isinstance(obj, dict):
        raise ProtocolError(BadRequest("the request must be a msgpack map", {"field": "frame"}))
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        raise ProtocolError(BadRequest("id: required, a string or an integer", {"field": "id"}))
    if isinstance(rid, str) and len(rid) > MAX_ID_LEN:
        raise ProtocolError(BadRequest(f"id: at most {MAX_ID_LEN} characters", {"field": "id"}))
    if isinstance(rid, int) and not -(2**63) <= rid < 2**64:
        raise ProtocolError(BadRequest("id: integer out of range", {"field": "id"}))

    def fail(error: WazError) -> ProtocolError:
        return ProtocolError(error, rid)

    v = obj.get("v")
    if "v" not in obj or isinstance(v, bool) or not isinstance(v, int):
        raise fail(BadRequest("v: required, an integer", {"field": "v"}))
    if v not in SUPPORTED_VERSIONS:
        raise fail(
            UnsupportedVersion(
                f"protocol version {v} is not supported", {"supported": list(SUPPORTED_VERSIONS)}
            )
        )
    unknown = [k for k in obj if k not in ENVELOPE_KEYS]
    if unknown:
        first = sorted(unknown)[0]
        raise fail(BadRequest(f"unknown field {first!r}", {"field": first}))
    cmd = obj.get("cmd")
    if not isinstance(cmd, str) or not cmd:
        raise fail(BadRequest("cmd: required, a string", {"field": "cmd"}))
    token = obj.get("token")
    if token is not None and not isinstance(token, str):
        raise fail(BadRequest("token: must be a string", {"field": "token"}))
    args = obj.get("args", {})
    if args is None or args == []:
        args = {}  # PHP packs an empty array as a msgpack array: take it as "no arguments"
    if not isinstance(args, dict):
        raise fail(BadRequest("args: must be a map", {"field": "args"}))
    return Request(v=v, id=rid, cmd=cmd, token=token, args=args)


def encode_request(
    rid: str | int, cmd: str, token: str | None, args: Mapping[str, Any] | None = None
) -> bytes:
    req: dict[str, Any] = {"v": VERSION, "id": rid, "cmd": cmd, "token": token}
    if args:
        req["args"] = dict(args)
    return pack(req)


def ok_reply(rid: str | int | None, result: Any) -> bytes:
    return pack({"v": VERSION, "id": rid, "ok": True, "result": result})


def error_reply(rid: str | int | None, error: WazError) -> bytes:
    return pack({"v": VERSION, "id": rid, "ok": False, "error": error.to_wire()})


# -- argument converters and the registry ----------------------------------------------------


class ArgError(ValueError):
    """Raised by a converter; the registry turns it into bad_request naming the argument."""

    def __init__(self, message: str, error: type[WazError] = BadRequest) -> None:
        super().__init__(message)
        self.error = error


Converter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Arg:
    convert: Converter
    required: bool = True


def optional(convert: Converter) -> Arg:
    """An argument that may be absent or nil (then the handler gets its default)."""
    return Arg(convert, required=False)


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable[..., Any]
    admin: bool
    readonly: bool
    # inline: answered on the socket thread (status board / store reads);
    # pool: may wait on an actor, runs on the worker pool;
    # the handler may also return a concurrent Future or a Later (message.send), answered when
    # it resolves.
    blocking: bool
    args: Mapping[str, Arg] = field(default_factory=dict)
    doc: str = ""

    def parse_args(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [k for k in raw if k not in self.args]
        if unknown:
            name = str(sorted(unknown, key=str)[0])
            raise BadRequest(f"{self.name}: unknown argument {name!r}", {"field": name})
        out: dict[str, Any] = {}
        for name, spec in self.args.items():
            value = raw.get(name)
            if value is None:
                if spec.required:
                    raise BadRequest(f"{name}: required", {"field": name})
                continue
            try:
                out[name] = spec.convert(value)
            except ArgError as e:
                raise e.error(f"{name}: {e}", {"field": name}) from None
        return out


class Registry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def command(
        self,
        name: str,
        *,
        admin: bool = False,
        readonly: bool = False,
        blocking: bool = False,
        args: Mapping[str, Arg | Converter] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        specs = {k: v if isinstance(v, Arg) else Arg(v) for k, v in (args or {}).items()}

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._commands:
                raise ValueError(f"command {name!r} registered twice")
            self._commands[name] = Command(
                name, fn, admin, readonly, blocking, specs, (fn.__doc__ or "").strip()
            )
            return fn

        return register

    def get(self, name: str) -> Command:
        try:
            return self._commands[name]
        except KeyError:
            raise UnknownCommand(f"unknown command {name!r}", {"field": "cmd"}) from None

    def names(self) -> list[str]:
        return sorted(self._commands)

    def __contains__(self, name: object) -> bool:
        return name in self._commands


REGISTRY = Registry()
command = REGISTRY.command

# The commands a client may safely send twice (after a timeout it cannot tell whether the first
# one ran). Kept here as data so the client needs no handler modules.
READONLY_COMMANDS = frozenset(
    {
        "ping",
        "daemon.status",
        "daemon.metrics",
        "instance.list",
        "instance.get",
        "message.get",
        "queue.status",
        "queue.list",
        "inbox.list",
        "campaign.get",
        "campaign.list",
        "campaign.recipients",
        "token.list",
        "sim.stats",
        "webhook.list",
        "webhook.get",
        "webhook.deliveries",
        "cluster.status",
    }
)
