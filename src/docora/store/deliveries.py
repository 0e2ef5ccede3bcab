"""The delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row


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
