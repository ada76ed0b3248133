"""From request bytes to reply bytes, without sockets: authenticate, parse, admit, call.

The control server feeds every request frame to `Dispatcher.handle` on its loop thread; tests
call a `Dispatcher` directly (`dispatcher(request)` answers the decoded reply map) with a real
fleet and store and no ZeroMQ at all.

Inline commands (status board and store reads) are answered on the spot; blocking commands
run on a small pool; a handler may also answer later through a future (`Later`: message.send
returns the store's group-commit future). A request answered later counts as in flight until
the server has sent its reply (`end`), so `wait_idle` (a stop) never misses it, and beyond
`max_inflight` new ones are refused with `busy` (load shedding).

Per tenant token, requests are rate-limited (`control.rate_limit`, a token bucket: `busy` with
`details.retry_after`); a reply over `control.max_reply_bytes` is answered `too_large`. Heavy
reads (queue.list) are `blocking` so they are read and packed on the pool, never on the loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any

from waz_actors.config import Config
from waz_actors.control import protocol
from waz_actors.control.auth import Auth, Identity
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import Later, ProtocolError, Registry, Request
from waz_actors.control.streams import Origin, Streams, current_origin
from waz_actors.errors import (
    BadRequest,
    Busy,
    Internal,
    ShuttingDown,
    TooLarge,
    Unauthorized,
    WazError,
)
from waz_actors.policy.limits import LogLimiter, RateLimits

if TYPE_CHECKING:
    from waz_actors.actors.fleet import Fleet
    from waz_actors.cluster.forward import Forwarder
    from waz_actors.store import StoreAPI

POOL_SIZE = 8
MAX_CONTEXTS = 10_000  # cached per-identity contexts; beyond this they are made per request

Peer = object  # where a reply goes; only the server knows what it is (a socket)
Deliver = Callable[[Peer, list[bytes], bytes], None]


def _as_is(result: Any) -> Any:
    return result


PAGE_HINT = "ask for less: a smaller `limit`, then page on with `after` (each reply's `next`)"

# Errors a client can cause over and over (a broken frame in a loop) are logged at most
# LOG_BURST times per LOG_INTERVAL seconds each, then once more with the count left out.
LOG_BURST = 5
LOG_INTERVAL = 60.0
_log_limit = LogLimiter(LOG_BURST, LOG_INTERVAL)
_log_lock = threading.Lock()
_log_clock: Callable[[], float] = time.monotonic  # tests replace it


def log_exception(message: str) -> None:
    """logger.exception, limited per message and exception type (see LOG_BURST)."""
    import sys

    from loguru import logger

    exc = sys.exc_info()[1]
    key = f"{message}|{type(exc).__name__}"
    with _log_lock:
        allowed, suppressed = _log_limit.check(key, _log_clock())
    if not allowed:
        return
    if suppressed:
        message += f" ({suppressed} similar errors not logged in the last {LOG_INTERVAL:g} s)"
    logger.opt(depth=1).exception(message)


_log_exception = log_exception


class Dispatcher:
    def __init__(
        self,
        config: Config,
        fleet: Fleet,
        store: StoreAPI,
        auth: Auth,
        registry: Registry,
        *,
        stats: dict[str, int] | None = None,
        server_stats: Callable[[], dict[str, Any]] | None = None,
        started_at: float = 0.0,
    ) -> None:
        self.config = config
        self.fleet = fleet
        self.store = store
        self.auth = auth
        self.registry = registry
        # Counters shared with the server: errors (replies sent at once), busy (shed).
        self.stats = stats if stats is not None else {"errors": 0, "busy": 0}
        self.server_stats = server_stats or (lambda: dict(self.stats))
        self.started_at = started_at  # time.monotonic() at the server's start, for ping
        # Called on the thread that resolved a later answer: hands the reply to the server.
        self.deliver: Deliver | None = None
        self.max_size = config.control.max_message_size
        self.max_reply = config.control.max_reply_bytes
        self.max_inflight = config.control.max_inflight
        # Per tenant token; the admin token is exempt (the operator must be able to act on a
        # daemon its tenants are flooding). Only the loop thread takes, but tests call in.
        self.clock: Callable[[], float] = time.monotonic
        self._rates = RateLimits(config.control.rate_limit, config.control.rate_burst)
        self._rates_lock = threading.Lock()
        self.accepting = True
        self.inflight = 0
        self._inflight_cv = threading.Condition()
        self._contexts: dict[Identity, Context] = {}
        self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="waz-control")
        self.streams = Streams(self._tenant_of)
        # Cluster: commands for an instance another node owns are answered by that node.
        self.forward: Forwarder | None = None

    def _tenant_of(self, instance_id: str) -> str | None:
        snap = self.fleet.snapshot(instance_id) if self.fleet is not None else None
        return snap.tenant if snap is not None else None

    # -- requests --------------------------------------------------------------------------

    def handle(
        self, frame: bytes, peer: Peer = None, envelope: list[bytes] | None = None
    ) -> bytes | None:
        """The reply to one request frame, or None when it comes later through `deliver`."""
        try:
            req = protocol.decode_request(frame, self.max_size)
        except ProtocolError as e:
            return self.error(e.request_id, e)
        except Exception:  # a frame the parser did not foresee: still answered, never a crash
            _log_exception("control: a request frame could not be parsed")
            return self.error(None, BadRequest("malformed request", {"field": "frame"}))
        token = current_origin.set(Origin(peer, envelope or [], req.id))
        try:
            out = self._answer(req)
        finally:
            current_origin.reset(token)
        if type(out) is bytes:
            return out
        self._defer(req.id, out, peer, envelope)  # type: ignore[arg-type]
        return None

    def __call__(self, request: bytes | Mapping[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Answer one request (its bytes or its map) and decode the reply; waits for a later
        answer. The same path as `handle`, for tests and tools without sockets."""
        frame = request if isinstance(request, bytes) else protocol.pack(dict(request))
        try:
            req = protocol.decode_request(frame, self.max_size)
        except ProtocolError as e:
            return self._decode(self.error(e.request_id, e))
        except Exception:
            _log_exception("control: a request frame could not be parsed")
            return self._decode(self.error(None, BadRequest("malformed", {"field": "frame"})))
        # No socket here: a subscription's events wait in its queue (tests read them there).
        token = current_origin.set(Origin(None, [], req.id))
        try:
            out = self._answer(req)
        finally:
            current_origin.reset(token)
        if isinstance(out, bytes):
            return self._decode(out)
        if not wait_futures([out.future], timeout).done:
            raise TimeoutError(f"{req.cmd}: no answer in {timeout} s")
        try:
            return self._decode(self._settle(req.id, out.future, out.shape))
        finally:
            self.end(1)

    def error(self, rid: str | int | None, error: WazError) -> bytes:
        """An error reply sent at once (counted in `errors`)."""
        self.stats["errors"] += 1
        return protocol.error_reply(rid, error)

    def _answer(self, req: Request) -> bytes | Later:
        try:
            return self._call(req)
        except WazError as e:
            return self.error(req.id, e)
        except Exception:
            _log_exception(f"control: {req.cmd} failed")
            return self.error(req.id, Internal("internal error"))

    def _call(self, req: Request) -> bytes | Later:
        if not self.accepting:
            raise ShuttingDown("the daemon is shutting down")
        cmd = self.registry.get(req.cmd)
        identity = self.auth.authenticate(req.token)
        if cmd.admin and not identity.admin:
            raise Unauthorized(f"{cmd.name} needs the admin token", {"field": "token"})
        if not identity.admin:
            self._admit(identity)
        args = cmd.parse_args(req.args)
        ctx = self._contexts.get(identity)
        if ctx is None:
            ctx = self._context(identity)
        if self.forward is not None and self._owned_elsewhere(req.cmd, args):
            self.begin()
            return Later(self._pool.submit(self._forward, cmd, ctx, req, args), _as_is)
        if cmd.readonly and not cmd.blocking:
            return self.ok(req.id, cmd.handler(ctx, **args))
        # Count the request in flight *before* it can start, so a stop never misses it.
        self.begin()
        try:
            if cmd.blocking:
                result: Any = self._pool.submit(cmd.handler, ctx, **args)
            else:
                result = cmd.handler(ctx, **args)
        except BaseException:
            self.end(1)
            raise
        if isinstance(result, Later):
            return result
        if isinstance(result, Future):
            return Later(result, _as_is)
        self.end(1)
        return self.ok(req.id, result)

    @staticmethod
    def _owned_elsewhere(cmd: str, args: dict[str, Any]) -> bool:
        from waz_actors.cluster.forward import needs_owner

        return needs_owner(cmd, args) is not None

    def _forward(self, cmd: Any, ctx: Context, req: Request, args: dict[str, Any]) -> Any:
        """On the pool: the owner's answer when another node holds the instance's lease,
        else the command run here (waiting for its later answer, if any)."""
        assert self.forward is not None
        target = self.forward.target(args["instance_id"])
        if target is not None:
            return self.forward.send(target, req.cmd, dict(req.args or {}), req.token)
        result = cmd.handler(ctx, **args)
        if isinstance(result, Later):
            return result.shape(result.future.result(self.config.control.ask_timeout + 5))
        if isinstance(result, Future):
            return result.result(self.config.control.ask_timeout + 5)
        return result

    def _admit(self, identity: Identity) -> None:
        """The tenant token's rate limit: busy with retry_after when its bucket is empty."""
        with self._rates_lock:
            wait = self._rates.take(identity.token_hash, self.clock())
        if wait > 0:
            self.stats["rate_limited"] = self.stats.get("rate_limited", 0) + 1
            raise Busy(
                "request rate limit reached for this token; retry later",
                {
                    "retry_after": round(wait, 3),
                    "rate_limit": self._rates.rate,
                    "rate_burst": int(self._rates.burst),
                },
            )

    def ok(self, rid: str | int, result: Any) -> bytes:
        """The ok reply, or too_large when it would pass control.max_reply_bytes."""
        reply = protocol.ok_reply(rid, result)
        if len(reply) > self.max_reply:
            return self.error(
                rid,
                TooLarge(
                    f"the reply would be {len(reply)} bytes, over control.max_reply_bytes",
                    {"size": len(reply), "max_reply_bytes": self.max_reply, "hint": PAGE_HINT},
                ),
            )
        return reply

    def _context(self, identity: Identity) -> Context:
        # One per identity: everything else in it is the server's.
        ctx = Context(
            fleet=self.fleet,
            store=self.store,
            config=self.config,
            auth=self.auth,
            identity=identity,
            started_at=self.started_at,
            server_stats=self.server_stats,
            streams=self.streams,
        )
        if len(self._contexts) < MAX_CONTEXTS:
            self._contexts[identity] = ctx
        return ctx

    def _defer(
        self, rid: str | int, later: Later, peer: Peer, envelope: list[bytes] | None
    ) -> None:
        deliver = self.deliver
        if deliver is None:
            raise RuntimeError("Dispatcher.deliver is not set: nobody can send a later reply")
        env = envelope if envelope is not None else []
        shape = later.shape
        settle = self._settle

        def done(future: Future[Any]) -> None:
            # Runs on the thread that resolved the future (store writer, pool worker): build
            # the reply here so the loop only has to send bytes.
            deliver(peer, env, settle(rid, future, shape))

        # `done` must not hold the future (nor the Later around it): the future keeps its
        # callbacks after it resolved, so that would be a reference cycle per request, left to
        # the cyclic garbage collector, whose full passes then cost more than the request did.
        later.future.add_done_callback(done)

    def _settle(self, rid: str | int, future: Future[Any], shape: Callable[[Any], Any]) -> bytes:
        """The reply to a request whose future has resolved."""
        try:
            return self.ok(rid, shape(future.result()))
        except WazError as e:
            return protocol.error_reply(rid, e)
        except Exception:
            _log_exception("control: a command failed")
            return protocol.error_reply(rid, Internal("internal error"))

    @staticmethod
    def _decode(reply: bytes) -> dict[str, Any]:
        obj = protocol.unpack(reply)
        assert isinstance(obj, dict)
        return obj

    # -- admission -------------------------------------------------------------------------

    def begin(self) -> None:
        with self._inflight_cv:
            # Checked under the lock a stop takes, so a request is either refused or waited for.
            if not self.accepting:
                raise ShuttingDown("the daemon is shutting down")
            if self.inflight >= self.max_inflight:
                self.stats["busy"] += 1
                raise Busy(
                    "too many requests in flight; retry later",
                    {"inflight": self.inflight, "max_inflight": self.max_inflight},
                )
            self.inflight += 1

    def end(self, n: int) -> None:
        """`n` requests answered later have had their replies sent."""
        with self._inflight_cv:
            self.inflight -= n
            self._inflight_cv.notify_all()

    def stop_accepting(self, timeout: float) -> None:
        """Refuse new requests (shutting_down) and wait up to `timeout` for those in flight."""
        with self._inflight_cv:
            self.accepting = False
            self._inflight_cv.wait_for(lambda: self.inflight == 0, timeout=max(0.0, timeout))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
