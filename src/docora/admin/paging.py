"""Opaque cursors: the last row's sort key, base64url-encoded JSON (pure)."""

from __future__ import annotations

import base64
import json

from docora.errors import MalformedInput

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(*values: object) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> tuple | None:
    """The key a cursor holds (`size` values), None without one; 400 when it is not one."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise MalformedInput("Invalid request: cursor is not one this API gave out")
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        raise MalformedInput("Invalid request: cursor is not one this API gave out")
    return tuple(values)


def page_of(rows: list, limit: int, key) -> tuple[list, str | None]:
    """Rows were fetched with limit + 1: the extra one says whether a next page exists."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(*key(rows[-1]))
