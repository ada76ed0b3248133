"""Who is signed in: the daemon token in a cookie, a CSRF token derived from it, page headers.

The token itself is the session (the daemon checks it on every command, so a revoked token
signs the browser out at its next click): kept in an HttpOnly cookie, unreadable by scripts,
and SameSite=Strict, so a link or form from another site arrives without it. Forms also carry
a CSRF token, an HMAC of the session token: stateless, so it survives a gateway restart, and
unguessable without the token. A POST whose Origin is another site is refused outright.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

COOKIE = "waz_session"
MAX_AGE = 7 * 24 * 3600  # the browser forgets it after a week; the daemon may revoke it sooner


def token_of(request: Request) -> str | None:
    value = request.cookies.get(COOKIE, "").strip()
    return value or None


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"waz-dashboard-csrf", hashlib.sha256).hexdigest()[:32]


def csrf_ok(token: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(csrf_for(token), given)


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site (Origin header)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    # A reverse proxy may rewrite Host; it then names the browser's host in X-Forwarded-Host.
    # (A page on another site cannot set that header on a cross-site form post.)
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return origin.split("://", 1)[-1] in hosts - {""}


def sign_in(request: Request, token: str, to: str) -> Response:
    """Sets the cookie and redirects to `to` (a path of ours, without the token)."""
    resp = RedirectResponse(to, status_code=303)
    resp.set_cookie(
        COOKIE,
        token,
        max_age=MAX_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        # https when the browser came over TLS (uvicorn trusts a local proxy's X-Forwarded-Proto).
        secure=request.url.scheme == "https",
    )
    return resp


def sign_out(resp: Response) -> Response:
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


def without_token(request: Request) -> str:
    """The request's path and query without `access_token` (so it leaves the address bar)."""
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != "access_token"]
    return request.url.path + (f"?{urlencode(rest)}" if rest else "")


def nonce() -> str:
    return secrets.token_urlsafe(16)


def secure_headers(resp: Response, script_nonce: str) -> Response:
    """Nothing from elsewhere, no framing, no referrer to other sites."""
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{script_nonce}'; "
        f"style-src 'nonce-{script_nonce}'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on our own
    # form posts, which same_origin() must refuse.
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    return resp
