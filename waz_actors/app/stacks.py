"""Every thread's stack on demand (SIGUSR1), the way pykka's deadlock guide debugs a stuck actor.

The signal handler only starts a short-lived thread: logging from inside a signal handler could
re-enter the log sink's lock held by the interrupted main thread and deadlock.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loguru import Logger


def thread_stacks() -> list[tuple[str, str]]:
    """(thread description, formatted stack) for every live thread, main thread first."""
    frames = sys._current_frames()
    threads = {t.ident: t for t in threading.enumerate()}
    out: list[tuple[str, str]] = []
    for ident, frame in frames.items():
        t = threads.get(ident)
        name = t.name if t is not None else "unknown"
        flags = " daemon" if t is not None and t.daemon else ""
        stack = "".join(traceback.format_stack(frame)).rstrip()
        out.append((f"{name} (id {ident}{flags})", stack))
    main = threading.main_thread().ident
    out.sort(key=lambda item: (f"(id {main}" not in item[0], item[0]))
    return out


def dump_stacks() -> str:
    """Every thread's name and stack as one text block."""
    parts = [f"--- thread {desc}\n{stack}" for desc, stack in thread_stacks()]
    return f"{len(parts)} thread(s)\n" + "\n".join(parts) + "\n"


def log_stacks(log: Logger) -> int:
    """Log one WARNING per thread, its stack in the `detail` extra (indented lines in text logs,
    a field in JSON). Returns the number of threads."""
    stacks = thread_stacks()
    log.warning("stack dump: {} thread(s)", len(stacks))
    for desc, stack in stacks:
        log.bind(detail=stack).warning("thread {}", desc)
    return len(stacks)


def install_sigusr1(
    log: Logger, *, fatal_tracebacks: bool = True
) -> Callable[..., Any] | int | None:
    """On SIGUSR1, log every thread's stack through `log` (a loguru logger).

    With `fatal_tracebacks`, faulthandler also prints all stacks to stderr on SIGSEGV, SIGABRT
    (systemd's watchdog signal), SIGFPE and SIGBUS, where no Python handler can run. Must be
    called from the main thread; returns the previous SIGUSR1 handler.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("install_sigusr1 must be called from the main thread")

    def on_usr1(_signum: int, _frame: object) -> None:
        threading.Thread(target=log_stacks, args=(log,), name="waz-stackdump", daemon=True).start()

    previous = signal.signal(signal.SIGUSR1, on_usr1)
    if fatal_tracebacks and not faulthandler.is_enabled():
        try:
            faulthandler.enable(all_threads=True)
        except (AttributeError, ValueError, OSError):
            pass  # stderr is not a real file (tests capture it): nothing to enable
    return previous


__all__ = ["dump_stacks", "install_sigusr1", "log_stacks", "thread_stacks"]
