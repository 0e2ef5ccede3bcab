"""Procrastinate's workers, and the proof that one is gone.

A worker holds a Postgres session for its whole life with a session-level advisory lock
keyed by its id (jobs/presence.py). Postgres drops the lock the moment that session ends:
a killed process's sockets close at once. So a worker whose lock is free and whose
heartbeat has stopped for `gone_after` is gone, and its jobs can be retried at once.

A worker cut off by a network partition (or paused) keeps its session on the server,
perhaps for hours. It holds a lease instead (docora/lease.py): each heartbeat it beats on
that session, once answered, lets it go on for two beats from when it was sent, and it
sends nothing past that. So a worker silent for `stalled_after` (its lease plus half a
beat) has stopped whatever its session, and its jobs are someone else's.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

# The advisory lock class of worker presence (first key); the worker id is the second.
PRESENCE_LOCK_CLASS = 0x646F63  # "doc"
INT4_MAX = 2147483647

TAKE_PRESENCE = "SELECT pg_advisory_lock(%s, %s)"
# A lease renewal: Postgres notes the heartbeat when it arrives, never before it was sent.
# No row: the worker was declared gone and its jobs were handed on.
BEAT = "UPDATE procrastinate_workers SET last_heartbeat = now() WHERE id = %s"

# The one definition of a worker's state, over procrastinate_workers w, used by the reaper,
# the workers list and the overview alike. Postgres holds a worker's lock exactly as long
# as its presence session lives.
HOLDS_PRESENCE = f"""EXISTS (SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid = {PRESENCE_LOCK_CLASS} AND l.objid = mod(w.id, {INT4_MAX})::oid)"""
# Gone: silent for `stalled_after` whatever its session (its lease ran out: a partition, a
# vanished host, a paused process), or silent for `gone_after` with its session over (its
# process died).
IS_GONE = f"""(w.last_heartbeat < now() - make_interval(secs => %(stalled_after)s)
    OR (w.last_heartbeat < now() - make_interval(secs => %(gone_after)s)
        AND NOT {HOLDS_PRESENCE}))"""

GONE_WORKERS = f"SELECT w.id FROM procrastinate_workers w WHERE {IS_GONE}"

ORPHANED_JOBS = """
SELECT j.id FROM procrastinate_jobs j
WHERE j.status = 'doing' AND (j.worker_id IS NULL OR j.worker_id = ANY(%(gone)s))
"""

FORGET_WORKERS = "DELETE FROM procrastinate_workers WHERE id = ANY(%s)"

# A job's outcome, recorded only by the worker that still holds the job: one cut off past
# its lease may find it handed on (retried, perhaps running elsewhere), and Procrastinate's
# own functions would overwrite that. MATERIALIZED: the row is locked before the function
# runs, so a concurrent hand-on either comes first (no row) or waits.
_OWNED = """WITH owned AS MATERIALIZED (
    SELECT id FROM procrastinate_jobs
    WHERE id = %(job_id)s AND worker_id = %(owner)s AND status = 'doing' FOR UPDATE)
"""
FINISH_IF_OWNER = (
    _OWNED + "SELECT procrastinate_finish_job_v1(id, %(status)s, %(delete_job)s) FROM owned"
)
RETRY_IF_OWNER = (
    _OWNED + "SELECT procrastinate_retry_job_v2(id, %(retry_at)s, %(new_priority)s, "
    "%(new_queue_name)s, %(new_lock)s) FROM owned"
)


def presence_key(worker_id: int) -> tuple[int, int]:
    return PRESENCE_LOCK_CLASS, worker_id % INT4_MAX


async def take_presence(conn: AsyncConnection, worker_id: int) -> None:
    await conn.execute(TAKE_PRESENCE, presence_key(worker_id))


async def beat(conn: AsyncConnection, worker_id: int) -> bool:
    """Record a heartbeat; False when the worker is no longer registered."""
    cur = await conn.execute(BEAT, (worker_id,))
    return cur.rowcount == 1


def liveness(*, gone_after_s: float, stalled_after_s: float) -> dict[str, float]:
    """The parameters IS_GONE reads."""
    return {"gone_after": gone_after_s, "stalled_after": stalled_after_s}


async def gone_workers(
    conn: AsyncConnection, *, gone_after_s: float, stalled_after_s: float
) -> list[int]:
    params = liveness(gone_after_s=gone_after_s, stalled_after_s=stalled_after_s)
    cur = await conn.execute(GONE_WORKERS, params)
    return [row[0] for row in await cur.fetchall()]


async def orphaned_jobs(conn: AsyncConnection, gone: list[int]) -> list[int]:
    """Jobs marked `doing` whose worker is gone (or was already forgotten)."""
    cur = await conn.execute(ORPHANED_JOBS, {"gone": gone})
    return [row[0] for row in await cur.fetchall()]


async def forget_workers(conn: AsyncConnection, worker_ids: list[int]) -> None:
    await conn.execute(FORGET_WORKERS, (worker_ids,))


class WorkerRow(msgspec.Struct, frozen=True):
    id: int
    last_heartbeat: datetime
    heartbeat_age_s: float
    has_session: bool
    alive: bool
    running_jobs: int


LIST_WORKERS = f"""
SELECT w.id, w.last_heartbeat,
       extract(epoch FROM now() - w.last_heartbeat)::float8 AS heartbeat_age_s,
       {HOLDS_PRESENCE} AS has_session,
       NOT {IS_GONE} AS alive,
       (SELECT count(*) FROM procrastinate_jobs j
         WHERE j.worker_id = w.id AND j.status = 'doing') AS running_jobs
FROM procrastinate_workers w ORDER BY w.id
"""


async def list_workers(
    conn: AsyncConnection, *, gone_after_s: float, stalled_after_s: float
) -> list[WorkerRow]:
    params = liveness(gone_after_s=gone_after_s, stalled_after_s=stalled_after_s)
    async with conn.cursor(row_factory=class_row(WorkerRow)) as cur:
        await cur.execute(LIST_WORKERS, params)
        return await cur.fetchall()
