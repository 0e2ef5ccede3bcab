"""Procrastinate's job queue as the operator sees it: counts and jobs by status and task."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection

from docora.store.sql import filtered_page

JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")


class JobRow(msgspec.Struct, frozen=True):
    id: int
    task_name: str
    status: str
    attempts: int
    scheduled_at: datetime | None
    args: dict


# An index-only scan of docora_jobs_status_id_idx.
COUNTS = "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"

FILTERS = {
    "status": "status = %(status)s::procrastinate_job_status",
    "task": "task_name = %(task)s",
    "app_ids": "args->>'app_id' = ANY(%(app_ids)s)",
    "before_id": "id < %(before_id)s",
}

PAGE = """
SELECT id, task_name, status::text AS status, attempts, scheduled_at, args
FROM procrastinate_jobs WHERE {conditions}
ORDER BY id DESC LIMIT %(limit)s
"""


async def counts(conn: AsyncConnection) -> dict[str, int]:
    cur = await conn.execute(COUNTS)
    found = dict(await cur.fetchall())
    return {status: found.get(status, 0) for status in JOB_STATUSES}


async def job_page(
    conn: AsyncConnection, *, filters: dict[str, object], limit: int
) -> list[JobRow]:
    return await filtered_page(conn, JobRow, PAGE, FILTERS, filters, limit)
