"""Stack dumps of every thread, on demand and on SIGUSR1."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest
from loguru import logger

from waz_actors.app.logs import setup_logging
from waz_actors.app.stacks import dump_stacks, install_sigusr1, thread_stacks


def parked_in_a_recognisable_place(release: threading.Event, parked: threading.Event) -> None:
    parked.set()
    release.wait(10)


@pytest.fixture
def parked_thread() -> Iterator[threading.Thread]:
    release, parked = threading.Event(), threading.Event()
    t = threading.Thread(
        target=parked_in_a_recognisable_place, args=(release, parked), name="actor-shop-7"
    )
    t.start()
    assert parked.wait(5)
    yield t
    release.set()
    t.join(5)


def test_dump_names_every_thread_with_its_stack(parked_thread: threading.Thread) -> None:
    text = dump_stacks()
    assert f"{len(threading.enumerate())} thread(s)" in text.splitlines()[0]
    assert "--- thread actor-shop-7 (id " in text
    block = text.split("--- thread actor-shop-7", 1)[1].split("--- thread", 1)[0]
    assert "parked_in_a_recognisable_place" in block
    assert "release.wait(10)" in block
    assert "test_dump_names_every_thread_with_its_stack" in text  # the main thread, too
    assert thread_stacks()[0][0].startswith(threading.main_thread().name)


def test_sigusr1_logs_every_stack(parked_thread: threading.Thread) -> None:
    buf = io.StringIO()
    done = threading.Event()
    setup_logging("INFO", "text", buf, prefix=True)
    seen: list[str] = []

    def watch(message: object) -> None:
        seen.append(str(message))
        if "thread actor-shop-7" in str(message):
            done.set()

    logger.add(watch, format="{message}", level="WARNING")
    previous = install_sigusr1(logger, fatal_tracebacks=False)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert done.wait(5), seen
    finally:
        signal.signal(signal.SIGUSR1, previous)
        logger.remove()
        logger.add(sys.stderr)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("<4>WARNING") and "stack dump:" in lines[0]
    i = next(n for n, line in enumerate(lines) if "thread actor-shop-7" in line)
    stack = []
    for line in lines[i + 1 :]:
        if not line.startswith("<4>    "):
            break
        stack.append(line)
    assert any("parked_in_a_recognisable_place" in line for line in stack)


def test_install_outside_the_main_thread_is_refused() -> None:
    errors: list[BaseException] = []
    before = signal.getsignal(signal.SIGUSR1)

    def attempt() -> None:
        try:
            install_sigusr1(logger)
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=attempt)
    t.start()
    t.join(5)
    assert errors and "main thread" in str(errors[0])
    assert signal.getsignal(signal.SIGUSR1) is before
