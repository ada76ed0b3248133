"""Logging: loguru to stderr, journald-friendly text or JSON lines, stdlib intercepted, secrets
redacted.

Text lines start with a syslog `<N>` priority when stderr is the journal (JOURNAL_STREAM names
our stderr), so `journalctl -p warning` works; by hand on a terminal they start with a time.
One event is one line: newlines in messages are escaped. A traceback (or a thread stack, via
the `detail` extra) follows as indented lines that carry the same priority prefix. JSON lines
are always exactly one line.

Tokens and key material never reach the sink: values of secret-looking `extra` keys, `waz_`
tokens and Z85 keys after the word "secret" are replaced before formatting.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

REDACTED = "[REDACTED]"
FORMATS = ("text", "json")

# The sink formats records itself: loguru must neither append the traceback nor (diagnose)
# print local variable values, which would include tokens.
_LOGURU_FORMAT = "{message}"

# ---------------------------------------------------------------------------- redaction

# Access tokens (control/auth.py): "waz_" + 43 url-safe characters.
_TOKEN = re.compile(r"\bwaz_[A-Za-z0-9_-]{32,}")
# Z85 (ZeroMQ CURVE) keys are 40 characters of this alphabet; redact one that follows "secret".
_Z85 = r"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}"
_SECRET_Z85 = re.compile(r"(secret[\w ]{0,20}?[\s:=\"']{1,4})" + _Z85, re.IGNORECASE)
# password=..., token=..., secret=... inside a message.
_ASSIGNED = re.compile(
    r"\b((?:password|passwd|passphrase|secret|token|api_key)\s*=\s*)(?!\[REDACTED\])[^\s,;&]+",
    re.IGNORECASE,
)
_SECRET_WORDS = frozenset(
    {
        "token",
        "tokens",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "apikey",
        "privkey",
        "key",
        "authorization",
        "cookie",
    }
)
# Names with a secret-looking word that are not secrets.
_PUBLIC_NAMES = frozenset({"idempotency_key", "public_key", "server_public_key", "token_id"})


def redact_text(text: str) -> str:
    text = _TOKEN.sub("waz_" + REDACTED, text)
    text = _SECRET_Z85.sub(lambda m: m.group(1) + REDACTED, text)
    return _ASSIGNED.sub(lambda m: m.group(1) + REDACTED, text)


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if lowered in _PUBLIC_NAMES:
        return False
    return any(part in _SECRET_WORDS for part in re.split(r"[^a-z0-9]+", lowered))


def redact_value(name: str, value: Any) -> Any:
    """`value` as it may be logged under `name`; nested tables and lists are walked."""
    if is_secret_name(name):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(name, v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


# ---------------------------------------------------------------------------- formatting


def syslog_priority(level_no: int) -> int:
    """loguru level number -> syslog priority (journald's PRIORITY=)."""
    if level_no >= 50:
        return 2  # crit
    if level_no >= 40:
        return 3  # err
    if level_no >= 30:
        return 4  # warning
    if level_no >= 25:
        return 5  # notice (loguru SUCCESS)
    if level_no >= 20:
        return 6  # info
    return 7  # debug, trace


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _instance(extra: Mapping[str, Any]) -> str | None:
    value = extra.get("instance", extra.get("instance_id"))
    return None if value is None else str(value)


def _exception_text(record: Mapping[str, Any]) -> str | None:
    exc = record["exception"]
    if exc is None or exc.type is None:
        return None
    return "".join(traceback.format_exception(exc.type, exc.value, exc.traceback)).rstrip()


def format_text(record: Mapping[str, Any], *, prefix: bool) -> str:
    level = record["level"]
    extra = record["extra"]
    head = f"<{syslog_priority(level.no)}>" if prefix else ""
    parts = [f"{level.name:<7}"]
    if not prefix:  # journald stamps its own time
        parts.insert(0, record["time"].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    inst = _instance(extra)
    if inst is not None:
        parts.append(f"[{_escape(redact_text(inst))}]")
    parts.append(f"{record['name']}:")
    parts.append(_escape(redact_text(record["message"])))
    lines = [head + " ".join(parts)]
    blocks = [_exception_text(record), extra.get("detail")]
    for block in blocks:
        if block:
            lines.extend(f"{head}    {line}" for line in redact_text(str(block)).splitlines())
    return "\n".join(lines) + "\n"


def format_json(record: Mapping[str, Any]) -> str:
    level = record["level"]
    extra = record["extra"]
    other = {k: v for k, v in extra.items() if k not in ("instance", "instance_id", "detail")}
    body: dict[str, Any] = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": level.name,
        "priority": syslog_priority(level.no),
        "logger": record["name"],
        "message": redact_text(record["message"]),
        "instance": None if _instance(extra) is None else redact_text(_instance(extra) or ""),
        "extra": redact_value("extra", other),
    }
    exc = _exception_text(record)
    if exc:
        body["exception"] = redact_text(exc)
    if extra.get("detail"):
        body["detail"] = redact_text(str(extra["detail"]))
    # json.dumps escapes every control character, so the object is always one line.
    return json.dumps(body, default=str, ensure_ascii=False) + "\n"


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the journal stream systemd connected (JOURNAL_STREAM=dev:ino)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in value.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class _Sink:
    def __init__(self, stream: TextIO, fmt: str, prefix: bool) -> None:
        self.stream = stream
        self.fmt = fmt
        self.prefix = prefix

    def __call__(self, message: Any) -> None:
        record = message.record
        if self.fmt == "json":
            line = format_json(record)
        else:
            line = format_text(record, prefix=self.prefix)
        self.stream.write(line)
        self.stream.flush()


# ---------------------------------------------------------------------------- stdlib


class InterceptHandler(logging.Handler):
    """Routes stdlib logging (pykka, pyzmq, neonize, asyncio) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Find the caller outside the logging module, for the record's function and line.
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1

        def named(r: Record) -> None:
            r["name"] = record.name  # the stdlib logger's name, not this module's

        logger.patch(named).opt(depth=depth, exception=record.exc_info).log(
            level, record.getMessage()
        )


# ---------------------------------------------------------------------------- setup


def setup_logging(
    level: str = "INFO",
    fmt: str = "text",
    stream: TextIO | None = None,
    *,
    prefix: bool | None = None,
) -> int:
    """Replace every loguru handler with ours and route stdlib logging into it.

    `prefix`: syslog `<N>` prefixes on text lines; None decides by JOURNAL_STREAM. Returns the
    loguru handler id. Bad arguments raise ValueError and leave logging as it was.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    if not isinstance(level, str):
        raise ValueError(f"log level must be a level name, got {level!r}")
    name = level.upper()
    try:
        logger.level(name)
    except ValueError:
        known = "TRACE, DEBUG, INFO, SUCCESS, WARNING, ERROR, CRITICAL"
        raise ValueError(f"unknown log level {level!r}; known: {known}") from None
    out = sys.stderr if stream is None else stream
    use_prefix = stream_is_journal(out) if prefix is None else prefix

    logger.remove()
    handler_id = logger.add(
        _Sink(out, fmt, use_prefix),
        level=name,
        format=_LOGURU_FORMAT,
        backtrace=False,
        diagnose=False,
        catch=True,
    )
    # Level 0 here: loguru filters, so a DEBUG daemon also sees pykka's debug lines.
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    logging.captureWarnings(True)
    return handler_id


__all__ = [
    "REDACTED",
    "InterceptHandler",
    "format_json",
    "format_text",
    "is_secret_name",
    "redact_text",
    "redact_value",
    "setup_logging",
    "stream_is_journal",
    "syslog_priority",
]
