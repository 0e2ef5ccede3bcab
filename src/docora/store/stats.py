"""The numbers of the operator's overview, read in one round of cheap indexed queries."""

from __future__ import annotations

import msgspec
from psycopg import AsyncConnection

from docora.store.workers import INT4_MAX, PRESENCE_LOCK_CLASS

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
OVERVIEW = """
SELECT
  (SELECT count(*) FROM apps) AS apps,
  (SELECT count(*) FROM repositories) AS repositories,
  (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
     (SELECT status, count(*) AS n FROM watches GROUP BY status) s) AS watches,
  (SELECT count(*) FROM repositories WHERE cooldown_until > now()) AS breakers_open,
  (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
     (SELECT status::text, count(*) AS n FROM procrastinate_jobs
      WHERE status IN ('todo', 'doing', 'failed') GROUP BY status) q) AS queue,
  (SELECT count(*) FROM procrastinate_workers w
    WHERE w.last_heartbeat > now() - make_interval(secs => %(alive_within)s)
       OR EXISTS (SELECT 1 FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                    AND l.classid = %(lock_class)s::oid
                    AND l.objid = (w.id %% %(int4_max)s)::oid)) AS workers_alive,
  (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
     (SELECT status, count(*) AS n FROM deliveries
      WHERE created_at > now() - interval '1 hour' GROUP BY status) d) AS deliveries
"""


async def overview(conn: AsyncConnection, *, alive_within_s: float) -> Overview:
    cur = await conn.execute(
        OVERVIEW,
        {"alive_within": alive_within_s, "lock_class": PRESENCE_LOCK_CLASS, "int4_max": INT4_MAX},
    )
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
