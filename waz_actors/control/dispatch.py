"""From request bytes to reply bytes, without sockets: authenticate, parse, admit, call.

The control server feeds every request frame to `Dispatcher.handle` on its loop thread; tests
call a `Dispatcher` directly (`dispatcher(request)` answers the decoded reply map) with a real
fleet and store and no ZeroMQ at all.

Inline commands (status board and store reads) are answered on the spot; blocking commands
run on a small pool; a handler may also answer later through a future (`Later`: message.send
returns the store's group-commit future). A request answered later counts as in flight until
the server has sent its reply (`end`), so `wait_idle` (a stop) never misses it, and beyond
`max_inflight` new ones are refused with `busy` (load shedding).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any

from waz_actors.config import Config
from waz_actors.control import protocol
from waz_actors.control.auth import Auth, Identity
from waz_actors.control.commands.context import Context
from waz_actors.control.protocol import Later, ProtocolError, Registry, Request
from waz_actors.errors import Busy, Internal, ShuttingDown, Unauthorized, WazError

if TYPE_CHECKING:
    from waz_actors.actors.fleet import Fleet
    from waz_actors.store import StoreAPI

POOL_SIZE = 8
MAX_CONTEXTS = 10_000  # cached per-identity contexts; beyond this they are made per request

Peer = object  # where a reply goes; only the server knows what it is (a socket)
Deliver = Callable[[Peer, list[bytes], bytes], None]


def _as_is(result: Any) -> Any:
    return result


def _log_exception(message: str) -> None:
    from loguru import logger

    logger.exception(message)


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
        self.max_inflight = config.control.max_inflight
        self.accepting = True
        self.inflight = 0
        self._inflight_cv = threading.Condition()
        self._contexts: dict[Identity, Context] = {}
        self._pool = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="waz-control")

    # -- requests --------------------------------------------------------------------------

    def handle(
        self, frame: bytes, peer: Peer = None, envelope: list[bytes] | None = None
    ) -> bytes | None:
        """The reply to one request frame, or None when it comes later through `deliver`."""
        try:
            req = protocol.decode_request(frame, self.max_size)
        except ProtocolError as e:
            return self.error(e.request_id, e)
        out = self._answer(req)
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
        out = self._answer(req)
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
        args = cmd.parse_args(req.args)
        ctx = self._contexts.get(identity)
        if ctx is None:
            ctx = self._context(identity)
        if cmd.readonly and not cmd.blocking:
            return protocol.ok_reply(req.id, cmd.handler(ctx, **args))
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
        return protocol.ok_reply(req.id, result)

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

    @staticmethod
    def _settle(rid: str | int, future: Future[Any], shape: Callable[[Any], Any]) -> bytes:
        """The reply to a request whose future has resolved."""
        try:
            return protocol.ok_reply(rid, shape(future.result()))
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
