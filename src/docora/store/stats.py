"""The numbers of the operator's overview, read in one round of cheap indexed queries."""

from __future__ import annotations

import msgspec
from psycopg import AsyncConnection

from docora.store.workers import IS_GONE, liveness

WATCH_STATUSES = ("pending_snapshot", "scanning", "synced", "retrying", "failed")


class Overview(msgspec.Struct, frozen=True):
    apps: int
    repositories: int
    watches: dict[str, int]
    circuit_breakers_open: int
    queue: dict[str, int]
    workers_alive: int
    deliveries_last_hour: dict[str, int]


# One statement, one round trip; each part uses an index (see docs/performance.md).
OVERVIEW = f"""
SELECT
  (SELECT count(*) FROM apps) AS apps,
  (SELECT count(*) FROM repositories) AS repositories,
  (SELECT coalesce(jsonb_object_agg(status, n), '{{}}') FROM
     (SELECT status, count(*) AS n FROM watches GROUP BY status) s) AS watches,
  (SELECT count(*) FROM repositories WHERE cooldown_until > now()) AS breakers_open,
  (SELECT coalesce(jsonb_object_agg(status, n), '{{}}') FROM
     (SELECT status::text, count(*) AS n FROM procrastinate_jobs
      WHERE status IN ('todo', 'doing', 'failed') GROUP BY status) q) AS queue,
  (SELECT count(*) FROM procrastinate_workers w WHERE NOT {IS_GONE}) AS workers_alive,
  (SELECT coalesce(jsonb_object_agg(status, n), '{{}}') FROM
     (SELECT status, count(*) AS n FROM deliveries
      WHERE created_at > now() - interval '1 hour' GROUP BY status) d) AS deliveries
"""


async def overview(
    conn: AsyncConnection, *, gone_after_s: float, stalled_after_s: float
) -> Overview:
    params = liveness(gone_after_s=gone_after_s, stalled_after_s=stalled_after_s)
    cur = await conn.execute(OVERVIEW, params)
    row = await cur.fetchone()
    assert row is not None
    apps, repos, watches, breakers, queue, alive, deliveries = row
    return Overview(
        apps=apps,
        repositories=repos,
        watches={status: watches.get(status, 0) for status in WATCH_STATUSES},
        circuit_breakers_open=breakers,
        queue={status: queue.get(status, 0) for status in ("todo", "doing", "failed")},
        workers_alive=alive,
        deliveries_last_hour={
            "succeeded": deliveries.get("delivered", 0),
            "failed": deliveries.get("failed", 0),
        },
    )


DELIVERY_TOTALS = "SELECT event, outcome, sum(n)::bigint FROM delivery_totals GROUP BY 1, 2"

# Due jobs only: a retry waiting for its backoff is not late. The deferral time comes from
# Procrastinate's event log (indexed by job).
OLDEST_TODO = """
SELECT coalesce(extract(epoch FROM now() - min(greatest(e.at, j.scheduled_at))), 0)::float8
FROM procrastinate_jobs j
JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred'
WHERE j.status = 'todo' AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
"""


async def delivery_totals(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    cur = await conn.execute(DELIVERY_TOTALS)
    return {(event, outcome): n for event, outcome, n in await cur.fetchall()}


async def oldest_todo_seconds(conn: AsyncConnection) -> float:
    cur = await conn.execute(OLDEST_TODO)
    row = await cur.fetchone()
    return max(0.0, row[0]) if row else 0.0
