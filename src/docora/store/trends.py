"""Trends over time (migrations/0012): the per-minute rollups of deliveries and rescan
checks (written by the statements that record what they count: store/changes.py and
store/checks.py), one row per sync, and the reads behind the console's charts. Each read
is one indexed range scan of the window, whatever the size of the delivery log."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from docora.store.sql import filtered


class BucketCount(msgspec.Struct, frozen=True):
    """Delivery attempts of one step of a series that fell in one latency bucket."""

    at: datetime
    bucket: int
    delivered: int
    failed: int


class CheckStep(msgspec.Struct, frozen=True):
    at: datetime
    checks: int
    max_lag_ms: int


class SyncRun(msgspec.Struct, frozen=True):
    finished_at: datetime
    duration_ms: int
    outcome: str
    commit_sha: str | None


RECORD_SYNC = """
INSERT INTO sync_runs (repository_id, duration_ms, outcome, commit_sha)
SELECT %(repository_id)s, %(duration_ms)s, %(outcome)s, %(commit_sha)s
WHERE EXISTS (SELECT 1 FROM repositories WHERE id = %(repository_id)s)
"""

# Steps are aligned on multiples of the step since the epoch (date_bin), so a series read
# twice a minute apart names the same instants.
DELIVERY_STEPS = """
SELECT date_bin(%(step)s * interval '1 second', minute, 'epoch') AS at, bucket,
       sum(delivered)::bigint AS delivered, sum(failed)::bigint AS failed
FROM delivery_minutes WHERE minute >= %(since)s AND {conditions}
GROUP BY 1, 2 ORDER BY 1, 2
"""
DELIVERY_FILTERS = {"app_id": "app_id = %(app_id)s"}

CHECK_STEPS = """
SELECT date_bin(%(step)s * interval '1 second', minute, 'epoch') AS at,
       sum(unchanged + changed + failed)::bigint AS checks, max(max_lag_ms) AS max_lag_ms
FROM check_minutes WHERE minute >= %(since)s
GROUP BY 1 ORDER BY 1
"""

SYNC_RUNS = """
SELECT finished_at, duration_ms, outcome, commit_sha FROM sync_runs
WHERE repository_id = %(repository_id)s AND finished_at >= %(since)s
ORDER BY finished_at DESC
LIMIT %(limit)s
"""

PRUNE = """
WITH d AS (DELETE FROM delivery_minutes WHERE minute < now() - %(days)s * interval '1 day'
           RETURNING 1),
     c AS (DELETE FROM check_minutes WHERE minute < now() - %(days)s * interval '1 day'
           RETURNING 1),
     s AS (DELETE FROM sync_runs WHERE finished_at < now() - %(days)s * interval '1 day'
           RETURNING 1)
SELECT (SELECT count(*) FROM d) + (SELECT count(*) FROM c) + (SELECT count(*) FROM s)
"""


async def record_sync(
    conn: AsyncConnection,
    *,
    repository_id: str,
    duration_ms: int,
    outcome: str,
    commit_sha: str | None,
) -> None:
    """One sync's row (none when the repository was deleted meanwhile)."""
    await conn.execute(
        RECORD_SYNC,
        {
            "repository_id": repository_id,
            "duration_ms": duration_ms,
            "outcome": outcome,
            "commit_sha": commit_sha,
        },
    )


async def delivery_steps(
    conn: AsyncConnection, *, since: datetime, step_s: int, app_id: str | None = None
) -> list[BucketCount]:
    params = {"since": since, "step": step_s, "app_id": app_id}
    sql = filtered(DELIVERY_STEPS, DELIVERY_FILTERS, params)
    async with conn.cursor(row_factory=class_row(BucketCount)) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def check_steps(conn: AsyncConnection, *, since: datetime, step_s: int) -> list[CheckStep]:
    async with conn.cursor(row_factory=class_row(CheckStep)) as cur:
        await cur.execute(CHECK_STEPS, {"since": since, "step": step_s})
        return await cur.fetchall()


async def sync_runs(
    conn: AsyncConnection, *, repository_id: str, since: datetime, limit: int
) -> list[SyncRun]:
    """The repository's last `limit` syncs since `since`, oldest first."""
    params = {"repository_id": repository_id, "since": since, "limit": limit}
    async with conn.cursor(row_factory=class_row(SyncRun)) as cur:
        await cur.execute(SYNC_RUNS, params)
        return list(reversed(await cur.fetchall()))


async def prune(conn: AsyncConnection, *, days: int) -> int:
    """Remove what is older than `days`; returns the rows removed."""
    cur = await conn.execute(PRUNE, {"days": days})
    row = await cur.fetchone()
    return row[0] if row else 0
