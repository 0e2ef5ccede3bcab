"""A repository's current snapshot: its commit, and what it leaves out."""

from __future__ import annotations

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

SELECT_PROGRESS = """
SELECT commit_sha AS commit, partial_commit, partial_through
FROM snapshots WHERE repository_id = %s
"""

SELECT_SKIPPED = """
SELECT path, reason FROM snapshot_skipped WHERE repository_id = %s ORDER BY path LIMIT %s
"""


class Progress(msgspec.Struct, frozen=True):
    """Where a repository's snapshot stands. `commit`: the complete snapshot's commit (None
    before the first one ends). While a first snapshot is published in parts (store/scans
    .py), `partial_commit` is its commit and its rows up to `partial_through` are final."""

    commit: str | None = None
    partial_commit: str | None = None
    partial_through: str | None = None

    @property
    def publishing(self) -> str | None:
        """The commit of a first snapshot whose parts are being published, if any."""
        return self.partial_commit if self.commit is None else None


async def progress(conn: AsyncConnection, repository_id: str) -> Progress:
    async with conn.cursor(row_factory=class_row(Progress)) as cur:
        await cur.execute(SELECT_PROGRESS, (repository_id,))
        return await cur.fetchone() or Progress()


async def skipped_files(
    conn: AsyncConnection, repository_id: str, *, limit: int = 1000
) -> list[dict[str, str]]:
    cur = await conn.execute(SELECT_SKIPPED, (repository_id, limit))
    return [{"path": path, "reason": reason} for path, reason in await cur.fetchall()]
