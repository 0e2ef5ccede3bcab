"""Per-watch change detection in SQL, and recording acknowledged deliveries.

A watch's changes are the difference between the repository's snapshot and the
watch's delivered state. They are read a page at a time, in path order, one group
(delete, create, update) after the other, so no step holds the repository in memory.
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

Event = Literal["delete", "create", "update"]
GROUP_ORDER: tuple[Event, ...] = ("delete", "create", "update")


class Change(msgspec.Struct, frozen=True):
    event: str
    path: str
    sha: str
    size: int
    blob_id: str | None
    is_binary: bool
    previous_sha: str | None


_PAGES: dict[str, str] = {
    "delete": """
SELECT 'delete' AS event, d.path, d.sha, 0::bigint AS size, NULL::text AS blob_id,
       false AS is_binary, NULL::text AS previous_sha
FROM delivered_files d
WHERE d.app_id = %(app_id)s AND d.repository_id = %(repository_id)s AND d.path > %(after)s
  AND NOT EXISTS (SELECT 1 FROM snapshot_files s
                  WHERE s.repository_id = d.repository_id AND s.path = d.path)
ORDER BY d.path LIMIT %(limit)s
""",
    "create": """
SELECT 'create' AS event, s.path, s.sha, s.size, s.blob_id, s.is_binary, NULL::text AS previous_sha
FROM snapshot_files s
WHERE s.repository_id = %(repository_id)s AND s.path > %(after)s
  AND NOT EXISTS (SELECT 1 FROM delivered_files d WHERE d.app_id = %(app_id)s
                  AND d.repository_id = s.repository_id AND d.path = s.path)
ORDER BY s.path LIMIT %(limit)s
""",
    "update": """
SELECT 'update' AS event, s.path, s.sha, s.size, s.blob_id, s.is_binary, d.sha AS previous_sha
FROM snapshot_files s
JOIN delivered_files d ON d.app_id = %(app_id)s AND d.repository_id = s.repository_id
                      AND d.path = s.path
WHERE s.repository_id = %(repository_id)s AND s.path > %(after)s AND d.sha <> s.sha
ORDER BY s.path LIMIT %(limit)s
""",
}

# Both statements are conditioned on the watch still existing at the same generation:
# after an unwatch or a reset, an in-flight acknowledgement records nothing.
_ACKNOWLEDGE: dict[str, str] = {
    "delete": """
DELETE FROM delivered_files d USING watches w
WHERE d.app_id = %(app_id)s AND d.repository_id = %(repository_id)s AND d.path = %(path)s
  AND w.app_id = d.app_id AND w.repository_id = d.repository_id
  AND w.generation = %(generation)s
RETURNING 1
""",
    "upsert": """
INSERT INTO delivered_files (app_id, repository_id, path, sha)
SELECT w.app_id, w.repository_id, %(path)s, %(sha)s FROM watches w
WHERE w.app_id = %(app_id)s AND w.repository_id = %(repository_id)s
  AND w.generation = %(generation)s
ON CONFLICT (app_id, repository_id, path)
DO UPDATE SET sha = EXCLUDED.sha, delivered_at = now()
RETURNING 1
""",
}

INSERT_LOG = """
INSERT INTO deliveries (app_id, repository_id, delivery_id, event, path, sha, commit_sha,
                        status, status_code, latency_ms, attempt, error)
VALUES (%(app_id)s, %(repository_id)s, %(delivery_id)s, %(event)s, %(path)s, %(sha)s,
        %(commit_sha)s, %(status)s, %(status_code)s, %(latency_ms)s, %(attempt)s, %(error)s)
"""

WATCH_GENERATION = "SELECT generation FROM watches WHERE app_id = %s AND repository_id = %s"


class LogEntry(msgspec.Struct, frozen=True):
    app_id: str
    repository_id: str
    delivery_id: uuid.UUID
    event: str
    path: str | None
    sha: str | None
    commit_sha: str | None
    status: str
    status_code: int | None
    latency_ms: int
    attempt: int
    error: str | None = None


async def change_page(
    conn: AsyncConnection,
    *,
    event: str,
    app_id: str,
    repository_id: str,
    after: str,
    limit: int,
) -> list[Change]:
    params = {"app_id": app_id, "repository_id": repository_id, "after": after, "limit": limit}
    async with conn.cursor(row_factory=class_row(Change)) as cur:
        await cur.execute(_PAGES[event], params)
        return await cur.fetchall()


async def acknowledge(
    conn: AsyncConnection, change: Change, *, generation: int, log: LogEntry
) -> bool:
    """Record an acknowledged event and its log row in one transaction.

    False when the watch is gone or was reset meanwhile: nothing is recorded then.
    """
    params = {
        "app_id": log.app_id,
        "repository_id": log.repository_id,
        "path": change.path,
        "sha": change.sha,
        "generation": generation,
    }
    statement = _ACKNOWLEDGE["delete" if change.event == "delete" else "upsert"]
    async with conn.transaction():
        cur = await conn.execute(statement, params)
        if await cur.fetchone() is None:
            still_there = await watch_generation(conn, log.app_id, log.repository_id)
            if still_there != generation:
                return False
        await conn.execute(INSERT_LOG, msgspec.structs.asdict(log))
    return True


async def log_attempt(conn: AsyncConnection, log: LogEntry) -> None:
    await conn.execute(INSERT_LOG, msgspec.structs.asdict(log))


async def watch_generation(conn: AsyncConnection, app_id: str, repository_id: str) -> int | None:
    cur = await conn.execute(WATCH_GENERATION, (app_id, repository_id))
    row = await cur.fetchone()
    return row[0] if row else None
