"""Repositories: one row per (remote, branch), shared by every app watching it, with its
circuit breaker and the commit of its latest snapshot."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row


class Repository(msgspec.Struct, frozen=True):
    id: str
    url: str
    host: str
    owner: str
    name: str
    branch: str
    is_private: bool
    consecutive_failures: int
    cooldown_until: datetime | None
    circuit_opened_at: datetime | None
    created_at: datetime
    # From the snapshots table: the commit the latest scan describes (None before one).
    snapshot_commit: str | None
    # Whether that scan resolved Git LFS pointers (None: no snapshot, or one made before).
    snapshot_lfs: bool | None = None
    # The snapshot's files whose content is a Git LFS object, and their bytes (SPEC 13).
    lfs_objects: int = 0
    lfs_bytes: int = 0


class CircuitState(msgspec.Struct, frozen=True):
    consecutive_failures: int
    cooldown_until: datetime | None
    opened_now: bool


_SNAPSHOT_COLUMNS = {
    "snapshot_commit": "s.commit_sha AS snapshot_commit",
    "snapshot_lfs": "s.lfs_resolved AS snapshot_lfs",
    "lfs_objects": "coalesce(s.lfs_objects, 0) AS lfs_objects",
    "lfs_bytes": "coalesce(s.lfs_bytes, 0) AS lfs_bytes",
}


def _column(field: str) -> str:
    return _SNAPSHOT_COLUMNS.get(field, f"r.{field}")


# Every column of Repository, for queries that join repositories r and snapshots s.
COLUMNS = ", ".join(_column(f) for f in Repository.__struct_fields__)
FROM = "repositories r LEFT JOIN snapshots s ON s.repository_id = r.id"

SELECT_REPOSITORY = f"SELECT {COLUMNS} FROM {FROM} WHERE r.id = %s"

# The id is derived from (url, branch), so the row has two unique keys that always agree;
# ON CONFLICT can arbitrate only one, and two first registrations at once could trip
# the other. Registrations of one repository therefore take turns (a transaction-scoped
# advisory lock, taken as the row to insert is produced: ON CONFLICT then sees the row a
# predecessor committed, whatever the statement's snapshot). One round trip in all.
UPSERT_REPOSITORY = f"""
WITH turn AS (SELECT pg_advisory_xact_lock(hashtextextended('repository:' || %(id)s, 0))),
upserted AS (
    INSERT INTO repositories (id, url, host, owner, name, branch, is_private)
    SELECT %(id)s, %(url)s, %(host)s, %(owner)s, %(name)s, %(branch)s, %(is_private)s
    FROM turn
    ON CONFLICT (id) DO UPDATE SET is_private = EXCLUDED.is_private, updated_at = now()
    RETURNING *
)
SELECT {COLUMNS} FROM upserted r LEFT JOIN snapshots s ON s.repository_id = r.id
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

# For one repository or a batch of checks (store/checks.py).
CLOSE_CIRCUIT = """
UPDATE repositories SET consecutive_failures = 0, cooldown_until = NULL,
    circuit_opened_at = NULL, updated_at = now()
WHERE id = ANY(%(circuit_ids)s) AND (consecutive_failures <> 0 OR cooldown_until IS NOT NULL)
"""


async def get_repository(conn: AsyncConnection, repository_id: str) -> Repository | None:
    async with conn.cursor(row_factory=class_row(Repository)) as cur:
        await cur.execute(SELECT_REPOSITORY, (repository_id,))
        return await cur.fetchone()


async def upsert_repository(conn: AsyncConnection, **values) -> Repository:
    """Insert or refresh a repository; call inside the caller's transaction."""
    async with conn.cursor(row_factory=class_row(Repository)) as cur:
        await cur.execute(UPSERT_REPOSITORY, values)
        row = await cur.fetchone()
    assert row is not None
    return row


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
    await conn.execute(CLOSE_CIRCUIT, {"circuit_ids": [repository_id]})


# repositories_url_match_idx: (lower(url), branch).
MATCH_PUSH = "SELECT id FROM repositories WHERE lower(url) = lower(%s) AND branch = ANY(%s)"


async def matching_push(conn: AsyncConnection, url: str, branches: list[str]) -> list[str]:
    """Repositories registered with this (normalized) URL and one of these branches."""
    cur = await conn.execute(MATCH_PUSH, (url, branches))
    return [row[0] for row in await cur.fetchall()]
