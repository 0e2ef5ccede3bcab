"""No-change checks in batches (SPEC 12): claiming due repositories, recording a batch's
outcomes in one statement, and how far behind the oldest due check is.

A watch is due when its `next_check_at` has passed; a repository is due when one of its
watches is. Claims take the oldest due first and skip rows another worker holds, and push
what they claim one lease ahead, so a worker that dies mid-batch only delays those checks.
"""

from __future__ import annotations

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from docora.store import repositories, watches

OUTCOMES = ("unchanged", "changed", "failed")


class DueRepository(msgspec.Struct, frozen=True):
    id: str
    url: str
    branch: str
    consecutive_failures: int
    snapshot_commit: str | None
    snapshot_lfs: bool | None  # whether that snapshot resolved Git LFS pointers
    # Whether every watch is synced at the snapshot's commit: only then can the remote's
    # tip alone tell that nothing is to be done.
    all_in_sync: bool
    # The credential to ask with: anonymous when any watch reads without a token (as a
    # sync asks first), else the first watch's token.
    app_id: str
    token_enc: bytes | None
    due_seconds: float  # how long ago the oldest of its watches fell due


# One range scan of watches_next_check_at_idx (oldest first), then one row per repository.
# Repositories whose circuit breaker is open are pushed too, but not returned; so are those
# whose sync is queued or running (a registration's first sync, a push hook's): that sync
# reads the tip itself and sets the next check when it ends, so a check now would only
# queue a second sync behind it. Two probes of Procrastinate's partial lock indexes.
CLAIM_DUE = """
WITH due AS (
    SELECT w.app_id, w.repository_id, w.next_check_at FROM watches w
    WHERE w.next_check_at <= now()
    ORDER BY w.next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), pushed AS (
    UPDATE watches w SET next_check_at = now() + %(lease)s * interval '1 millisecond'
    FROM due WHERE w.app_id = due.app_id AND w.repository_id = due.repository_id
    RETURNING w.repository_id, due.next_check_at AS was_due
), repos AS (
    SELECT repository_id, min(was_due) AS was_due FROM pushed GROUP BY repository_id
)
SELECT r.id, r.url, r.branch, r.consecutive_failures, s.commit_sha AS snapshot_commit,
       s.lfs_resolved AS snapshot_lfs,
       s.commit_sha IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM watches x WHERE x.repository_id = r.id
             AND (x.status <> 'synced' OR x.commit_sha IS DISTINCT FROM s.commit_sha)
       ) AS all_in_sync,
       c.app_id, c.token_enc,
       extract(epoch FROM now() - p.was_due)::float8 AS due_seconds
FROM repos p
JOIN repositories r ON r.id = p.repository_id
LEFT JOIN snapshots s ON s.repository_id = r.id
CROSS JOIN LATERAL (
    SELECT x.app_id, x.token_enc FROM watches x WHERE x.repository_id = r.id
    ORDER BY x.token_enc IS NOT NULL, x.app_id LIMIT 1
) c
WHERE (r.cooldown_until IS NULL OR r.cooldown_until <= now())
  AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j
                  WHERE j.lock = %(sync_lock_prefix)s || r.id AND j.status = 'todo')
  AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j
                  WHERE j.lock = %(sync_lock_prefix)s || r.id AND j.status = 'doing')
ORDER BY p.was_due
"""

# A batch's outcomes, one statement: the unchanged repositories' synced watches are marked
# checked, circuits of repositories that answered again are closed (the statements a
# single sync runs), and the totals and the minute's rollup (migrations/0012) grow.
RECORD_BATCH = f"""
WITH checked AS ({watches.MARK_CHECKED} RETURNING 1
), closed AS ({repositories.CLOSE_CIRCUIT} RETURNING 1
), counted AS (
    INSERT INTO rescan_totals AS t (outcome, n)
    SELECT outcome, n FROM unnest(%(outcomes)s::text[], %(counts)s::bigint[]) AS v(outcome, n)
    WHERE n > 0
    ON CONFLICT (outcome) DO UPDATE SET n = t.n + EXCLUDED.n
    RETURNING 1
), minute AS (
    INSERT INTO check_minutes AS m (minute, unchanged, changed, failed, max_lag_ms)
    VALUES (date_trunc('minute', now()), %(n_unchanged)s, %(n_changed)s, %(n_failed)s,
            %(max_lag_ms)s)
    ON CONFLICT (minute) DO UPDATE SET unchanged = m.unchanged + EXCLUDED.unchanged,
        changed = m.changed + EXCLUDED.changed, failed = m.failed + EXCLUDED.failed,
        max_lag_ms = greatest(m.max_lag_ms, EXCLUDED.max_lag_ms)
    RETURNING 1
)
SELECT (SELECT count(*) FROM checked), (SELECT count(*) FROM closed)
"""

# How long the oldest due check has waited (0 when none is due), and when the next falls
# due: two probes of watches_next_check_at_idx.
LAG = """
SELECT greatest(0, extract(epoch FROM now() - min(next_check_at)))::float8,
       extract(epoch FROM min(next_check_at) - now())::float8
FROM watches
"""

TOTALS = "SELECT outcome, n FROM rescan_totals"


async def claim_due(
    conn: AsyncConnection, *, limit: int, lease_ms: int, sync_lock_prefix: str
) -> list[DueRepository]:
    """Claim up to `limit` due watches (their repositories, oldest due first). A sync's
    job lock is `sync_lock_prefix` + the repository id."""
    params = {"limit": limit, "lease": lease_ms, "sync_lock_prefix": sync_lock_prefix}
    async with conn.transaction(), conn.cursor(row_factory=class_row(DueRepository)) as cur:
        await cur.execute(CLAIM_DUE, params)
        return await cur.fetchall()


async def record_batch(
    conn: AsyncConnection,
    *,
    unchanged: list[str],
    closing: list[str],
    counts: dict[str, int],
    interval_ms: int,
    max_lag_s: float,
) -> int:
    """Record a batch (`max_lag_s`: how long its oldest check had been due when claimed);
    returns how many watches were marked checked."""
    cur = await conn.execute(
        RECORD_BATCH,
        {
            "checked_ids": unchanged,
            "circuit_ids": closing,
            "outcomes": list(OUTCOMES),
            "counts": [counts.get(o, 0) for o in OUTCOMES],
            "rescan": interval_ms,
            **{f"n_{o}": counts.get(o, 0) for o in OUTCOMES},
            "max_lag_ms": round(max_lag_s * 1000),
        },
    )
    row = await cur.fetchone()
    return row[0] if row else 0


async def lag(conn: AsyncConnection) -> tuple[float, float | None]:
    """(seconds the oldest due check has waited, seconds until the next one is due)."""
    cur = await conn.execute(LAG)
    row = await cur.fetchone()
    if row is None or row[1] is None:
        return 0.0, None
    return row[0], row[1]


async def totals(conn: AsyncConnection) -> dict[str, int]:
    cur = await conn.execute(TOTALS)
    found = {outcome: n for outcome, n in await cur.fetchall()}
    return {outcome: found.get(outcome, 0) for outcome in OUTCOMES}
