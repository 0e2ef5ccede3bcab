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

# Acknowledgements are recorded in batches, each batch in one transaction that first
# locks the watch row at the expected generation: after an unwatch or a reset, an
# in-flight acknowledgement records nothing. Arrays keep the parameter count fixed.
LOCK_WATCH = """
SELECT 1 FROM watches WHERE app_id = %s AND repository_id = %s AND generation = %s FOR SHARE
"""
RECORD_UPSERTS = """
INSERT INTO delivered_files (app_id, repository_id, path, sha)
SELECT %(app_id)s, %(repository_id)s, u.path, u.sha
FROM unnest(%(paths)s::text[], %(shas)s::text[]) AS u(path, sha)
ON CONFLICT (app_id, repository_id, path) DO UPDATE SET sha = EXCLUDED.sha, delivered_at = now()
"""
RECORD_DELETES = """
DELETE FROM delivered_files
WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s AND path = ANY(%(paths)s::text[])
"""
COPY_LOG = """
COPY deliveries (app_id, repository_id, delivery_id, event, path, sha, commit_sha, status,
                 status_code, latency_ms, attempt, error) FROM STDIN
"""

# docora_deliveries_total, kept with the log rows it counts (same transaction).
COUNT_DELIVERIES = """
INSERT INTO delivery_totals (event, outcome, shard, n)
SELECT e.event, e.outcome, abs(hashtext(%(app_id)s || %(repository_id)s)) %% 16, count(*)
FROM unnest(%(events)s::text[], %(outcomes)s::text[]) AS e(event, outcome)
GROUP BY e.event, e.outcome
ON CONFLICT (event, outcome, shard) DO UPDATE SET n = delivery_totals.n + EXCLUDED.n
"""

INSERT_LOG = """
INSERT INTO deliveries (app_id, repository_id, delivery_id, event, path, sha, commit_sha,
                        status, status_code, latency_ms, attempt, error)
VALUES (%(app_id)s, %(repository_id)s, %(delivery_id)s, %(event)s, %(path)s, %(sha)s,
        %(commit_sha)s, %(status)s, %(status_code)s, %(latency_ms)s, %(attempt)s, %(error)s)
"""


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


async def record_acknowledged(
    conn: AsyncConnection, batch: list[tuple[Change | None, LogEntry]], *, generation: int
) -> bool:
    """Record acknowledged events (delivered state + log rows) in one transaction.

    An item without a change is a log row only (a chunk before the last one). False when
    the watch is gone or was reset meanwhile: nothing is recorded then.
    """
    first = batch[0][1]
    upserts = [c for c, _ in batch if c is not None and c.event != "delete"]
    deletes = [c.path for c, _ in batch if c is not None and c.event == "delete"]
    keys = {"app_id": first.app_id, "repository_id": first.repository_id}
    async with conn.transaction():
        # The commit returns without waiting for the WAL flush: a worker crash loses
        # nothing committed; a Postgres crash may lose the last few hundred milliseconds
        # of acknowledgements, whose events are then sent again (at-least-once).
        await conn.execute("SET LOCAL synchronous_commit = off")
        cur = await conn.execute(LOCK_WATCH, (first.app_id, first.repository_id, generation))
        if await cur.fetchone() is None:
            return False
        if upserts:
            paths, shas = [c.path for c in upserts], [c.sha for c in upserts]
            await conn.execute(RECORD_UPSERTS, {**keys, "paths": paths, "shas": shas})
        if deletes:
            await conn.execute(RECORD_DELETES, {**keys, "paths": deletes})
        async with conn.cursor() as log_cur, log_cur.copy(COPY_LOG) as copy:
            for _, entry in batch:
                await copy.write_row(msgspec.structs.astuple(entry))
        await _count(conn, [entry for _, entry in batch])
    return True


async def _count(conn: AsyncConnection, entries: list[LogEntry]) -> None:
    first = entries[0]
    await conn.execute(
        COUNT_DELIVERIES,
        {
            "app_id": first.app_id,
            "repository_id": first.repository_id,
            "events": [e.event for e in entries],
            "outcomes": [e.status for e in entries],
        },
    )


async def log_attempt(conn: AsyncConnection, log: LogEntry) -> None:
    async with conn.transaction():
        await conn.execute(INSERT_LOG, msgspec.structs.asdict(log))
        await _count(conn, [log])
