"""Logging: journald priority prefixes, instance ids, JSON lines, stdlib interception, redaction."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from waz_actors.app.logs import REDACTED, redact_text, redact_value, setup_logging

TOKEN = "waz_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0u1v"  # 43 chars like auth.new_token
Z85_SECRET = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"  # ZeroMQ's test vector, 40 chars


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def _lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_text_lines_carry_syslog_priorities() -> None:
    buf = io.StringIO()
    setup_logging("DEBUG", "text", buf, prefix=True)
    logger.debug("d")
    logger.info("i")
    logger.success("s")
    logger.warning("w")
    logger.error("e")
    logger.critical("c")
    prefixes = [line.split(">", 1)[0] + ">" for line in _lines(buf)]
    assert prefixes == ["<7>", "<6>", "<5>", "<4>", "<3>", "<2>"]
    assert _lines(buf)[1] == "<6>INFO    tests.service.test_logs: i"


def test_level_filters_and_no_prefix_starts_with_a_time() -> None:
    buf = io.StringIO()
    setup_logging("warning", "text", buf, prefix=False)
    logger.info("hidden")
    logger.warning("shown")
    (line,) = _lines(buf)
    assert line[:4].isdigit() and line[4] == "-"  # 2026-...
    assert "WARNING" in line and line.endswith("shown")
    assert not line.startswith("<")


def test_instance_id_on_every_line_about_an_instance() -> None:
    buf = io.StringIO()
    setup_logging("INFO", "text", buf, prefix=True)
    log = logger.bind(instance="shop-42")
    log.info("connected")
    log.warning("conflict 440")
    logger.info("daemon line")
    lines = _lines(buf)
    assert "[shop-42] " in lines[0] and "[shop-42] " in lines[1]
    assert "[" not in lines[2].split(">", 1)[1]


def test_one_line_per_event_and_indented_traceback() -> None:
    buf = io.StringIO()
    setup_logging("INFO", "text", buf, prefix=True)
    logger.info("first\nsecond\r\nthird")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.bind(instance="a").exception("send failed")
    lines = _lines(buf)
    assert lines[0].endswith("first\\nsecond\\r\\nthird")
    assert lines[1].startswith("<3>ERROR   [a] ") and lines[1].endswith("send failed")
    rest = lines[2:]
    assert rest and all(line.startswith("<3>    ") for line in rest)
    assert rest[-1].endswith("RuntimeError: boom")


def test_json_is_one_object_per_line() -> None:
    buf = io.StringIO()
    setup_logging("INFO", "json", buf)
    logger.bind(instance="i1", code=440).warning("line one\nline two")
    try:
        {}["missing"]
    except KeyError:
        logger.exception("lookup\nfailed")
    lines = _lines(buf)
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "WARNING" and first["priority"] == 4
    assert first["message"] == "line one\nline two"
    assert first["instance"] == "i1"
    assert first["extra"] == {"code": 440}
    assert first["time"].endswith("+00:00") or first["time"][-6] in "+-"
    assert second["instance"] is None
    assert "KeyError: 'missing'" in second["exception"]


def test_stdlib_logging_is_intercepted() -> None:
    buf = io.StringIO()
    setup_logging("DEBUG", "text", buf, prefix=True)
    logging.getLogger("pykka").debug("actor %s started", "A")
    logging.getLogger("zmq.auth").warning("denied")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("neonize").exception("go side failed")
    lines = _lines(buf)
    assert lines[0] == "<7>DEBUG   pykka: actor A started"
    assert lines[1] == "<4>WARNING zmq.auth: denied"
    assert lines[2] == "<3>ERROR   neonize: go side failed"
    assert any("ValueError: bad" in line for line in lines[3:])


def test_python_warnings_are_captured() -> None:
    import warnings

    buf = io.StringIO()
    setup_logging("INFO", "text", buf, prefix=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old api", DeprecationWarning, stacklevel=1)
    assert any(line.startswith("<4>WARNING py.warnings:") for line in _lines(buf))


def test_tokens_and_keys_are_redacted_in_text_and_json() -> None:
    for fmt in ("text", "json"):
        buf = io.StringIO()
        setup_logging("INFO", fmt, buf, prefix=True)
        logger.bind(
            token=TOKEN,
            settings={"proxy_password": "hunter2", "name": "x"},
            idempotency_key="order-7",
            curve_secret_key="anything",
        ).info("client {} connected; server secret key: {}; password=hunter2", TOKEN, Z85_SECRET)
        try:
            raise PermissionError(f"token {TOKEN} revoked")
        except PermissionError:
            logger.bind(instance="i").exception("auth")
        out = buf.getvalue()
        for secret in (TOKEN, Z85_SECRET, "hunter2", "anything", TOKEN[4:20]):
            assert secret not in out, (fmt, out)
        assert "waz_" + REDACTED in out
        if fmt == "json":
            first = json.loads(out.splitlines()[0])
            assert first["extra"]["token"] == REDACTED
            assert first["extra"]["settings"] == {"proxy_password": REDACTED, "name": "x"}
            assert first["extra"]["idempotency_key"] == "order-7"


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "waz_actors.control: instance shop-1 online, key count 3, secret of success"
    assert redact_text(text) == text
    assert redact_value("public_key", "abc") == "abc"
    assert redact_value("api_key", "abc") == REDACTED
    assert redact_value("tags", ["a", TOKEN]) == ["a", "waz_" + REDACTED]


def test_prefix_follows_journal_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "journal-stand-in"
    with path.open("w") as f:
        st = os.fstat(f.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        setup_logging("INFO", "text", f)
        logger.info("to the journal")
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        setup_logging("INFO", "text", f)  # another stream is the journal: no prefix
        logger.info("to a file")
    first, second = path.read_text().splitlines()
    assert first.startswith("<6>INFO")
    assert not second.startswith("<")


def test_bad_arguments_are_clear_errors_and_keep_the_old_setup() -> None:
    buf = io.StringIO()
    setup_logging("INFO", "text", buf, prefix=True)
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        setup_logging("LOUD", "text", io.StringIO())
    with pytest.raises(ValueError, match="'text' or 'json'"):
        setup_logging("INFO", "xml", io.StringIO())
    logger.info("still here")
    assert _lines(buf) == ["<6>INFO    tests.service.test_logs: still here"]
