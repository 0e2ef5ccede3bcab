"""Per request: an X-Request-Id (taken from the client when sane, else made), the log context
that carries it, the HTTP metrics labelled by route template, and one access-log line once
the request is answered (SPEC 10).

The access line names the route template, never the raw path or query (ids and query
values would leak into logs and make them unsearchable by route), and never a header or
body: a token can only reach it as the app id it authenticated.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from docora.logs import FIELDS, log_context
from docora.web.context import WebContext
from docora.web.ratelimit import peer_address

access_log = logging.getLogger("docora.access")

# 1-128 visible ASCII characters: anything else is replaced, never echoed.
_REQUEST_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")
# Probes answered every few seconds: their lines would drown everything else.
QUIET_ROUTES = frozenset({"/health", "/metrics"})
# Where the scope carries what the request learnt about its caller (see note_app).
_ACCESS = "docora.access"


def request_id_of(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id" and _REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def note_app(scope: Scope, app_id: str) -> None:
    """Called by authentication: the access line of this request names the app."""
    note = scope.get(_ACCESS)
    if note is not None:
        note["app_id"] = app_id


def access_level(route: str, status: int) -> int:
    if route in QUIET_ROUTES:
        return logging.DEBUG
    return logging.WARNING if status >= 500 else logging.INFO


def access_fields(
    scope: Scope, *, route: str, status: int, seconds: float, request_id: str
) -> dict[str, object]:
    fields: dict[str, object] = {
        "method": scope["method"],
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "request_id": request_id,
        "peer": peer_address(scope),
    }
    app_id = scope.get(_ACCESS, {}).get("app_id")
    if app_id:
        fields["app_id"] = app_id
    return fields


def request_observer(ctx: WebContext):
    """Wraps the whole application (docora.asgi), not only its routes: a request that
    matches no route is answered, and must be logged, too."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request_id = request_id_of(scope)
            started = time.perf_counter()
            status = 500
            scope[_ACCESS] = {}  # type: ignore[literal-required]

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = list(message.get("headers", ()))
                    headers.append((b"x-request-id", request_id.encode()))
                    message = {**message, "headers": headers}
                await send(message)

            try:
                with log_context(request_id=request_id):
                    await app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                route = scope.get("path_template") or "unmatched"
                ctx.http_metrics.observe(scope["method"], route, status, seconds)
                level = access_level(route, status)
                if access_log.isEnabledFor(level):
                    fields = access_fields(
                        scope, route=route, status=status, seconds=seconds, request_id=request_id
                    )
                    access_log.log(
                        level,
                        "%s %s %d %.1f ms",
                        fields["method"],
                        route,
                        status,
                        fields["duration_ms"],
                        extra={FIELDS: fields},
                    )

        return middleware

    return factory
