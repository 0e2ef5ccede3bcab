"""Every error leaves the API as {"error": "..."}; nothing internal reaches a client."""

from __future__ import annotations

import logging

import psycopg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from docora.errors import (
    Conflict,
    DocoraError,
    Forbidden,
    InvalidInput,
    MalformedInput,
    NotFound,
    Unavailable,
)

log = logging.getLogger("docora.api")


def _validation_message(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    for item in details:
        if not isinstance(item, dict):
            continue
        key, message = item.get("key"), item.get("message", "invalid value")
        parts.append(f"{key}: {message}" if key else str(message))
    if not parts:
        return exc.detail or "Invalid request"
    return "Invalid request: " + "; ".join(parts)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        {"error": message}, status_code=status, media_type=MediaType.JSON, headers=headers
    )


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    if isinstance(exc, ValidationException):
        message = _validation_message(exc)
    elif exc.status_code == 413:
        message = "Request body too large (limit 1 MiB)"
    else:
        message = exc.detail
    return error_response(exc.status_code, message, exc.headers)


# The one place where Docora's errors become HTTP statuses (most specific class first).
STATUS_OF: tuple[tuple[type[DocoraError], int], ...] = (
    (MalformedInput, 400),
    (InvalidInput, 422),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
)


def status_of(exc: DocoraError) -> int:
    return next((status for kind, status in STATUS_OF if isinstance(exc, kind)), 500)


def docora_error_handler(request: Request, exc: DocoraError) -> Response:
    status = status_of(exc)
    if status == 500:
        return internal_error_handler(request, exc)
    return error_response(status, exc.message)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    # The request body is never logged: it may carry tokens or signing keys.
    log.error(
        "unhandled error on %s %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
        exc_info=exc,
    )
    return error_response(500, "Internal server error")


def database_unavailable_handler(request: Request, exc: psycopg.OperationalError) -> Response:
    # Postgres is down or restarting (PoolTimeout is an OperationalError too); the client
    # should retry shortly. Only the class is logged: the message may name the server.
    log.warning(
        "database unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return error_response(503, "Database unavailable, retry later", {"Retry-After": "5"})


EXCEPTION_HANDLERS = {
    HTTPException: http_exception_handler,
    DocoraError: docora_error_handler,
    psycopg.OperationalError: database_unavailable_handler,
    Exception: internal_error_handler,
}
