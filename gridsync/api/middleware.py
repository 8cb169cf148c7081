"""ASGI guards in front of every route: authenticate before reading a body, cap its size,
and add security headers to every response.

FastAPI parses a request body before it runs the route's dependencies, so without
:class:`RequestGuard` an anonymous 48 MB POST was read whole (9.8 s, 256 MB) before its 401.
The guard answers from the headers alone: a state-changing request under ``/api/`` without a
known bearer token gets 401, one under ``/console/`` (other than the log-in form) without a
valid session cookie gets 401, and a declared ``Content-Length`` above ``max_body_bytes``
gets 413, all before one body byte is read. A body that grows past the limit while it is
being read (chunked transfer) is cut off with 413 as well.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Default request body limit (bytes): above the largest telemetry message (1 MiB) and
#: scenario upload (100 k characters); ``GRIDSYNC_MAX_BODY_BYTES`` overrides it.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Everything the API, the console and the local Swagger UI load comes from this origin;
#: plotly.js inserts inline styles, Swagger UI uses data: images.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def max_body_bytes_from_env(environ: dict[str, str] | None = None) -> int:
    """``GRIDSYNC_MAX_BODY_BYTES`` or :data:`DEFAULT_MAX_BODY_BYTES`."""
    env = os.environ if environ is None else environ
    raw = env.get("GRIDSYNC_MAX_BODY_BYTES", "")
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1024:
        msg = f"GRIDSYNC_MAX_BODY_BYTES: expected an integer >= 1024 bytes, got {raw!r}"
        raise ValueError(msg)
    return value


async def _send_json(send: Send, status: int, detail: str, extra=()) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """See the module docstring. ``authorized(scope, headers)`` returns None to let the
    request through or ``(status, detail, extra_headers)`` to refuse it unread."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        authorized: Callable[[Scope, dict[bytes, bytes]], tuple | None],
    ) -> None:
        self.app, self.max_body_bytes, self.authorized = app, max_body_bytes, authorized

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send_with_headers)
            return
        headers = dict(scope.get("headers", []))
        refused = self.authorized(scope, headers)
        if refused is not None:
            await _send_json(send, *refused)
            return
        limit = self.max_body_bytes
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            await _send_json(send, 400, "Content-Length is not an integer")
            return
        if declared > limit:
            await _send_json(send, 413, f"request body of {declared} bytes exceeds {limit} bytes")
            return
        seen = 0

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise HTTPException(413, f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, capped_receive, send_with_headers)


def bearer_token(headers: dict[bytes, bytes]) -> str | None:
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def cookie(headers: dict[bytes, bytes], name: str) -> str | None:
    try:
        jar = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
    except CookieError:
        return None
    return jar[name].value if name in jar else None


def api_and_console_auth(app: Any) -> Callable[[Scope, dict[bytes, bytes]], tuple | None]:
    """The guard's check for ``app``: bearer token under ``/api/``, console session cookie
    under ``/console/`` (except the log-in form, which has its own throttling)."""

    def check(scope: Scope, headers: dict[bytes, bytes]) -> tuple | None:
        path: str = scope["path"]
        if path.startswith("/api/"):
            token = bearer_token(headers)
            if token is None or app.state.tokens.lookup(token) is None:
                why = "missing bearer token" if token is None else "unknown token"
                return 401, why, [(b"www-authenticate", b"Bearer")]
            return None
        console = getattr(app.state, "console", None)
        if console is None or not path.startswith("/console/") or path == "/console/login":
            return None
        if console.signer.verify(cookie(headers, console.cookie_name)) is None:
            return 401, "log in first (session missing or expired)", []
        return None

    return check
