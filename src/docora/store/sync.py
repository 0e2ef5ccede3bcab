"""Sync state: what the worker reads and writes about repositories and their watches."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row


class RepositoryState(msgspec.Struct, frozen=True):
    id: str
    url: str
    host: str
    owner: str
    name: str
    branch: str
    consecutive_failures: int
    cooldown_until: datetime | None
    circuit_opened_at: datetime | None
    snapshot_commit: str | None


class WatchState(msgspec.Struct, frozen=True):
    app_id: str
    status: str
    commit_sha: str | None
    generation: int
    token_enc: bytes | None
    verified_commit: str | None


class CircuitState(msgspec.Struct, frozen=True):
    consecutive_failures: int
    cooldown_until: datetime | None
    opened_now: bool


SELECT_REPOSITORY = """
SELECT r.id, r.url, r.host, r.owner, r.name, r.branch, r.consecutive_failures,
       r.cooldown_until, r.circuit_opened_at, s.commit_sha AS snapshot_commit
FROM repositories r LEFT JOIN snapshots s ON s.repository_id = r.id
WHERE r.id = %s
"""

_WATCH_COLUMNS = "app_id, status, commit_sha, generation, token_enc, verified_commit"

SELECT_WATCHES = f"""
SELECT {_WATCH_COLUMNS} FROM watches WHERE repository_id = %s ORDER BY app_id
"""

SELECT_WATCH = f"""
SELECT {_WATCH_COLUMNS} FROM watches WHERE repository_id = %s AND app_id = %s
"""

# The scheduler's tick: one range scan of watches_next_check_at_idx. Due watches are
# pushed one rescan interval ahead so the next tick does not queue them again; a
# finished sync sets the real next check.
CLAIM_DUE_REPOSITORIES = """
WITH due AS (
    SELECT w.app_id, w.repository_id FROM watches w
    WHERE w.next_check_at <= now()
    ORDER BY w.next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), pushed AS (
    UPDATE watches w SET next_check_at = now() + %(rescan)s * interval '1 millisecond'
    FROM due WHERE w.app_id = due.app_id AND w.repository_id = due.repository_id
    RETURNING w.repository_id
)
SELECT DISTINCT p.repository_id FROM pushed p JOIN repositories r ON r.id = p.repository_id
WHERE r.cooldown_until IS NULL OR r.cooldown_until <= now()
"""

MARK_CHECKED = """
UPDATE watches SET last_scanned_at = now(),
    next_check_at = now() + %(rescan)s * interval '1 millisecond'
WHERE repository_id = %(repository_id)s AND status = 'synced'
"""

RECORD_GIT_FAILURE = """
UPDATE repositories SET
    consecutive_failures = consecutive_failures + 1,
    cooldown_until = CASE WHEN consecutive_failures + 1 >= %(threshold)s
        THEN now() + %(cooldown)s * interval '1 millisecond' ELSE cooldown_until END,
    circuit_opened_at = CASE WHEN consecutive_failures + 1 >= %(threshold)s
        THEN now() ELSE circuit_opened_at END,
    updated_at = now()
WHERE id = %(repository_id)s
RETURNING consecutive_failures, cooldown_until,
    consecutive_failures >= %(threshold)s AS opened_now
"""

CLOSE_CIRCUIT = """
UPDATE repositories SET consecutive_failures = 0, cooldown_until = NULL,
    circuit_opened_at = NULL, updated_at = now()
WHERE id = %s AND (consecutive_failures <> 0 OR cooldown_until IS NOT NULL)
"""

SET_WATCH_STATUS = """
UPDATE watches SET status = %(status)s, last_error = %(error)s,
    retry_count = coalesce(%(retry_count)s, retry_count),
    next_check_at = now() + %(recheck)s * interval '1 millisecond', updated_at = now()
WHERE repository_id = %(repository_id)s AND app_id = ANY(%(app_ids)s)
"""

# Access shown (or lost) for these watches at this snapshot commit.
SET_VERIFIED = """
UPDATE watches SET verified_commit = %(commit)s
WHERE repository_id = %(repository_id)s AND app_id = ANY(%(app_ids)s)
"""

MARK_SYNCED = """
UPDATE watches SET status = 'synced', commit_sha = %(commit_sha)s, last_error = NULL,
    retry_count = 0, last_scanned_at = now(),
    next_check_at = now() + %(rescan)s * interval '1 millisecond', updated_at = now()
WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s AND generation = %(generation)s
  AND verified_commit IS NOT DISTINCT FROM %(commit_sha)s
"""


async def load_repository(conn: AsyncConnection, repository_id: str) -> RepositoryState | None:
    async with conn.cursor(row_factory=class_row(RepositoryState)) as cur:
        await cur.execute(SELECT_REPOSITORY, (repository_id,))
        return await cur.fetchone()


async def load_watches(conn: AsyncConnection, repository_id: str) -> list[WatchState]:
    async with conn.cursor(row_factory=class_row(WatchState)) as cur:
        await cur.execute(SELECT_WATCHES, (repository_id,))
        return await cur.fetchall()


async def load_watch(conn: AsyncConnection, repository_id: str, app_id: str) -> WatchState | None:
    async with conn.cursor(row_factory=class_row(WatchState)) as cur:
        await cur.execute(SELECT_WATCH, (repository_id, app_id))
        return await cur.fetchone()


async def claim_due_repositories(conn: AsyncConnection, *, rescan_ms: int, limit: int) -> list[str]:
    async with conn.transaction():
        cur = await conn.execute(CLAIM_DUE_REPOSITORIES, {"rescan": rescan_ms, "limit": limit})
        return [row[0] for row in await cur.fetchall()]


async def mark_checked(conn: AsyncConnection, repository_id: str, *, rescan_ms: int) -> None:
    await conn.execute(MARK_CHECKED, {"repository_id": repository_id, "rescan": rescan_ms})


async def record_git_failure(
    conn: AsyncConnection, repository_id: str, *, threshold: int, cooldown_ms: int
) -> CircuitState:
    params = {"repository_id": repository_id, "threshold": threshold, "cooldown": cooldown_ms}
    async with conn.cursor(row_factory=class_row(CircuitState)) as cur:
        await cur.execute(RECORD_GIT_FAILURE, params)
        row = await cur.fetchone()
    assert row is not None
    return row


async def close_circuit(conn: AsyncConnection, repository_id: str) -> None:
    await conn.execute(CLOSE_CIRCUIT, (repository_id,))


async def set_watch_status(
    conn: AsyncConnection,
    repository_id: str,
    app_ids: list[str],
    *,
    status: str,
    error: str | None = None,
    retry_count: int | None = None,
    recheck_ms: int,
) -> None:
    """Set status and error of some watches; they come back to the scheduler after recheck_ms
    (a safety net: a job lost with a crashed machine is queued again)."""
    await conn.execute(
        SET_WATCH_STATUS,
        {
            "repository_id": repository_id,
            "app_ids": app_ids,
            "status": status,
            "error": error,
            "retry_count": retry_count,
            "recheck": recheck_ms,
        },
    )


async def mark_synced(
    conn: AsyncConnection,
    *,
    app_id: str,
    repository_id: str,
    generation: int,
    commit_sha: str | None,
    rescan_ms: int,
) -> None:
    await conn.execute(
        MARK_SYNCED,
        {
            "app_id": app_id,
            "repository_id": repository_id,
            "generation": generation,
            "commit_sha": commit_sha,
            "rescan": rescan_ms,
        },
    )


async def set_verified(
    conn: AsyncConnection, repository_id: str, app_ids: list[str], commit: str | None
) -> None:
    await conn.execute(
        SET_VERIFIED, {"repository_id": repository_id, "app_ids": app_ids, "commit": commit}
    )
