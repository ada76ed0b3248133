"""Protocol error codes -> HTTP statuses, and the one error body of the native API."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

# docs/http.md has this table; codes other branches add (quota_exceeded, storage_full) are here
# already so the gateway needs no change when they land.
STATUS = {
    "bad_request": 400,
    "unsupported_version": 400,
    "unauthorized": 401,
    "not_found": 404,
    "exists": 409,
    "invalid_state": 409,
    "too_large": 413,
    "queue_full": 429,
    "busy": 429,
    "quota_exceeded": 429,
    "unknown_command": 501,  # the daemon is older than this gateway (e.g. no group.list yet)
    "shutting_down": 503,
    "storage_full": 503,
    "unreachable": 503,
    "internal": 500,
}
RETRY_AFTER = {"queue_full": 5, "busy": 1, "quota_exceeded": 60, "shutting_down": 5}
RETRY_AFTER_DEFAULT = 5  # storage_full, unreachable


def status_for(code: str) -> int:
    return STATUS.get(code, 500)


def retry_after(code: str, details: dict[str, Any]) -> int | None:
    """Seconds for `Retry-After` on 429 and 503; the daemon's own hint wins when it gives one."""
    hint = details.get("retry_after")
    if isinstance(hint, int | float) and not isinstance(hint, bool) and hint >= 0:
        return max(1, round(hint))
    if status_for(code) in (429, 503):
        return RETRY_AFTER.get(code, RETRY_AFTER_DEFAULT)
    return None


def error_headers(code: str, details: dict[str, Any]) -> dict[str, str]:
    after = retry_after(code, details)
    return {"Retry-After": str(after)} if after is not None else {}


def error_response(
    code: str, message: str, details: dict[str, Any] | None = None, status: int | None = None
) -> JSONResponse:
    details = details or {}
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}},
        status_code=status or status_for(code),
        headers=error_headers(code, details),
    )


class HttpError(Exception):
    """Raised by request parsing (bad body, bad query value) before anything is sent."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
