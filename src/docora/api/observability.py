"""Per request: an X-Request-Id (taken from the client when sane, else made), the log
context that carries it, and the HTTP metrics labelled by route template."""

from __future__ import annotations

import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from docora.logs import log_context
from docora.metrics import HttpMetrics

# 1-128 visible ASCII characters: anything else is replaced, never echoed.
_REQUEST_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")


def request_id_of(scope: Scope) -> str:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id" and _REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def observability_middleware(metrics: HttpMetrics):
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            request_id = request_id_of(scope)
            started = time.perf_counter()
            status = 500

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
                route = scope.get("path_template") or "unmatched"
                metrics.observe(scope["method"], route, status, time.perf_counter() - started)

        return middleware

    return factory
