"""Fetching a message's media for a driver: on worker threads, never on the actor's thread.

Drivers that send media (the sim in-process, the whatsmeow driver host) fetch the URL themselves
with net/fetch.py, once per message: what they fetched is remembered per message id for the
driver's life (bounded), so a retry of the same message does not fetch again. The fetched
info goes back to the daemon in `SendResult.media`; failures become failed `SendResult`s whose
`permanent` flag is the fetch error's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from waz_actors.drivers.base import OutgoingMessage, SendResult
from waz_actors.net.fetch import Fetched, FetchError, Limits, fetch

KEPT = 1000  # fetched infos remembered per driver (retries of recent messages)
WORKERS = 8  # fetches at once per process; each streams to a file, so memory stays bounded

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def workers() -> ThreadPoolExecutor:
    """The process's fetch threads, started on the first media send."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="media-fetch")
        return _pool


def media_error(
    message_id: str, e: FetchError, info: Mapping[str, Any] | None = None
) -> SendResult:
    return SendResult(message_id, ok=False, error=f"media: {e}", permanent=e.permanent, media=info)


class FetchedInfos:
    """message id -> what was fetched for it (mime, kind, size, sha256), the newest KEPT."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._infos: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, message_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._infos.get(message_id)

    def put(self, message_id: str, info: dict[str, Any]) -> None:
        with self._lock:
            self._infos[message_id] = info
            self._infos.move_to_end(message_id)
            while len(self._infos) > KEPT:
                self._infos.popitem(last=False)


def fetch_for(message: OutgoingMessage, limits: Limits) -> Fetched:
    """Fetch `message.media["url"]` (FetchError on failure); the caller discards the file."""
    media = message.media or {}
    url = media.get("url")
    if not isinstance(url, str):
        raise FetchError("no url", permanent=True)
    mime = media.get("mime")
    return fetch(url, limits, mime=mime if isinstance(mime, str) else None)


def submit(fn: Callable[[], None]) -> None:
    workers().submit(fn)


__all__ = ["KEPT", "FetchedInfos", "fetch_for", "media_error", "submit", "workers"]
