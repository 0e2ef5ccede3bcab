"""The delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from docora.store.sql import filtered_page


class DeliveryRow(msgspec.Struct, frozen=True):
    id: int
    delivery_id: uuid.UUID
    repository_id: str
    event: str
    path: str | None
    sha: str | None
    commit_sha: str | None
    status: str
    status_code: int | None
    latency_ms: int
    attempt: int
    error: str | None
    created_at: datetime


# Keyset pagination on the identity column: stable under concurrent inserts.
SELECT_PAGE = """
SELECT id, delivery_id, repository_id, event, path, sha, commit_sha, status, status_code,
       latency_ms, attempt, error, created_at
FROM deliveries
WHERE app_id = %(app_id)s
  AND (%(repository_id)s::text IS NULL OR repository_id = %(repository_id)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
ORDER BY id DESC
LIMIT %(limit)s
"""


async def list_deliveries(
    conn: AsyncConnection,
    *,
    app_id: str,
    repository_id: str | None,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[DeliveryRow]:
    params = {
        "app_id": app_id,
        "repository_id": repository_id,
        "status": status,
        "before_id": before_id,
        "limit": limit,
    }
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(SELECT_PAGE, params)
        return await cur.fetchall()


# --- the operator's view: the log across apps --------------------------------------------


class AdminDelivery(msgspec.Struct, frozen=True):
    id: int
    delivery_id: uuid.UUID
    app_id: str
    app_name: str | None
    repository_id: str
    event: str
    path: str | None
    status: str
    status_code: int | None
    attempt: int
    latency_ms: int
    error: str | None
    created_at: datetime


ADMIN_FILTERS = {
    "app_ids": "app_id = ANY(%(app_ids)s)",
    "repository_id": "repository_id = %(repository_id)s",
    "event": "event = %(event)s",
    "outcome": "status = %(outcome)s",
    "since": "created_at >= %(since)s",
    "until": "created_at < %(until)s",
    "before_id": "id < %(before_id)s",
}

ADMIN_PAGE = """
SELECT id, delivery_id, app_id, (SELECT a.name FROM apps a WHERE a.id = d.app_id) AS app_name,
       repository_id, event, path, status, status_code, attempt, latency_ms, error, created_at
FROM deliveries d WHERE {conditions}
ORDER BY id DESC LIMIT %(limit)s
"""


async def admin_delivery_page(
    conn: AsyncConnection, *, filters: dict[str, object], limit: int
) -> list[AdminDelivery]:
    """Newest first; `filters` holds ADMIN_FILTERS' names (None: not filtered)."""
    return await filtered_page(conn, AdminDelivery, ADMIN_PAGE, ADMIN_FILTERS, filters, limit)
