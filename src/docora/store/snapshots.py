"""A repository's current snapshot: its commit, and what it leaves out."""

from __future__ import annotations

from psycopg import AsyncConnection

SELECT_COMMIT = "SELECT commit_sha FROM snapshots WHERE repository_id = %s"

SELECT_SKIPPED = """
SELECT path, reason FROM snapshot_skipped WHERE repository_id = %s ORDER BY path LIMIT %s
"""


async def current_commit(conn: AsyncConnection, repository_id: str) -> str | None:
    cur = await conn.execute(SELECT_COMMIT, (repository_id,))
    row = await cur.fetchone()
    return row[0] if row else None


async def skipped_files(
    conn: AsyncConnection, repository_id: str, *, limit: int = 1000
) -> list[dict[str, str]]:
    cur = await conn.execute(SELECT_SKIPPED, (repository_id, limit))
    return [{"path": path, "reason": reason} for path, reason in await cur.fetchall()]
