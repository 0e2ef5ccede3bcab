"""Applying a scan to the snapshot, in SQL.

The scan streams its rows into a temporary work table with COPY; blob facts are joined
in, and only rows that differ are written to snapshot_files. No statement's parameter
count grows with the repository, and rows arrive as a stream (see scan/ for what the
scanner itself holds).
"""

from __future__ import annotations

from collections.abc import AsyncIterable

import msgspec
from psycopg import AsyncConnection


class WorkRow(msgspec.Struct, frozen=True, array_like=True):
    """One path's fate in the new snapshot: a file, skipped (with why), or gone."""

    path: str
    blob_id: str | None = None
    size: int | None = None
    skip_reason: str | None = None
    deleted: bool = False


class BlobFacts(msgspec.Struct, frozen=True, array_like=True):
    """What a blob_facts row holds about one blob: SHA-256, size, binary or text."""

    sha: str
    size: int
    is_binary: bool


CREATE_WORK = """
CREATE TEMP TABLE IF NOT EXISTS scan_work (
    path text COLLATE "C" PRIMARY KEY,
    blob_id text,
    size bigint,
    skip_reason text,
    deleted boolean NOT NULL
)
"""
DROP_WORK = "DROP TABLE IF EXISTS scan_work"
COPY_WORK = "COPY scan_work (path, blob_id, size, skip_reason, deleted) FROM STDIN"

# Keyset pages, in path order, of the paths whose blob the repository has never hashed.
# Path order is roughly the pack's order: git then finds each delta's base in its cache,
# where blob-id order (random) made it rebuild delta chains again and again (3.5x slower).
# The facts are looked up per row (LATERAL ... LIMIT 1, as in store/changes.py): a hash join
# would read every fact of the repository again for every page.
MISSING_FACTS = """
SELECT w.path, w.blob_id FROM scan_work w
LEFT JOIN LATERAL (SELECT 1 AS known FROM blob_facts f
                   WHERE f.repository_id = %(repository_id)s AND f.blob_id = w.blob_id
                   LIMIT 1) f ON true
WHERE w.blob_id IS NOT NULL AND w.path > %(after)s AND f.known IS NULL
ORDER BY w.path LIMIT %(limit)s
"""
COPY_FACTS = "COPY blob_facts (repository_id, blob_id, sha, size, is_binary) FROM STDIN"

ENSURE_SNAPSHOT = """
INSERT INTO snapshots (repository_id, commit_sha) VALUES (%(repository_id)s, %(commit_sha)s)
ON CONFLICT (repository_id) DO NOTHING
"""

# A full scan lists every path: whatever it does not list is gone.
DELETE_UNLISTED = """
DELETE FROM snapshot_files s WHERE s.repository_id = %(repository_id)s AND NOT EXISTS (
    SELECT 1 FROM scan_work w WHERE w.path = s.path AND w.blob_id IS NOT NULL)
"""
DELETE_UNLISTED_SKIPS = """
DELETE FROM snapshot_skipped s WHERE s.repository_id = %(repository_id)s AND NOT EXISTS (
    SELECT 1 FROM scan_work w WHERE w.path = s.path AND w.skip_reason IS NOT NULL)
"""
# An incremental scan lists only changed paths: remove those that are no longer files.
DELETE_CHANGED = """
DELETE FROM snapshot_files s USING scan_work w
WHERE s.repository_id = %(repository_id)s AND s.path = w.path AND w.blob_id IS NULL
"""
DELETE_CHANGED_SKIPS = """
DELETE FROM snapshot_skipped s USING scan_work w
WHERE s.repository_id = %(repository_id)s AND s.path = w.path AND w.skip_reason IS NULL
"""
UPSERT_FILES = """
INSERT INTO snapshot_files (repository_id, path, sha, size, blob_id, is_binary)
SELECT %(repository_id)s, w.path, f.sha, f.size, w.blob_id, f.is_binary
FROM scan_work w JOIN blob_facts f
  ON f.repository_id = %(repository_id)s AND f.blob_id = w.blob_id
ON CONFLICT (repository_id, path) DO UPDATE SET
    sha = EXCLUDED.sha, size = EXCLUDED.size, blob_id = EXCLUDED.blob_id,
    is_binary = EXCLUDED.is_binary
WHERE snapshot_files.blob_id IS DISTINCT FROM EXCLUDED.blob_id
"""
UPSERT_SKIPS = """
INSERT INTO snapshot_skipped (repository_id, path, reason)
SELECT %(repository_id)s, w.path, w.skip_reason FROM scan_work w WHERE w.skip_reason IS NOT NULL
ON CONFLICT (repository_id, path) DO UPDATE SET reason = EXCLUDED.reason
"""
FINISH_SNAPSHOT = """
UPDATE snapshots SET commit_sha = %(commit_sha)s, scanned_at = now(),
    fetch_count = fetch_count + 1, blobs_hashed = blobs_hashed + %(hashed)s,
    file_count = t.files, total_bytes = t.bytes
FROM (SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes FROM snapshot_files
      WHERE repository_id = %(repository_id)s) t
WHERE repository_id = %(repository_id)s
"""
COUNT_CHANGED = "SELECT count(*) FROM scan_work"


async def start_work(conn: AsyncConnection) -> None:
    await conn.execute(DROP_WORK)
    await conn.execute(CREATE_WORK)


async def end_work(conn: AsyncConnection) -> None:
    await conn.execute(DROP_WORK)


async def copy_work(conn: AsyncConnection, rows: AsyncIterable[WorkRow]) -> None:
    async with conn.cursor() as cur:
        async with cur.copy(COPY_WORK) as copy:
            async for row in rows:
                await copy.write_row(
                    (row.path, row.blob_id, row.size, row.skip_reason, row.deleted)
                )
        # Temporary tables have no statistics until analyzed; the joins below need them.
        await cur.execute("ANALYZE scan_work")


async def missing_facts(
    conn: AsyncConnection, repository_id: str, *, after: str, limit: int
) -> list[tuple[str, str]]:
    """(path, blob id) pairs after `after`; a blob may appear under several paths."""
    cur = await conn.execute(
        MISSING_FACTS, {"repository_id": repository_id, "after": after, "limit": limit}
    )
    return [(row[0], row[1]) for row in await cur.fetchall()]


async def store_facts(
    conn: AsyncConnection, repository_id: str, facts: list[tuple[str, BlobFacts]]
) -> None:
    async with conn.cursor() as cur, cur.copy(COPY_FACTS) as copy:
        for blob_id, f in facts:
            await copy.write_row((repository_id, blob_id, f.sha, f.size, f.is_binary))


async def apply_work(
    conn: AsyncConnection, repository_id: str, commit_sha: str, *, full: bool, hashed: int
) -> int:
    """Make the snapshot match the work table in one transaction; return paths examined."""
    params = {"repository_id": repository_id, "commit_sha": commit_sha, "hashed": hashed}
    async with conn.transaction():
        await conn.execute(ENSURE_SNAPSHOT, params)
        if full:
            await conn.execute(DELETE_UNLISTED, params)
            await conn.execute(DELETE_UNLISTED_SKIPS, params)
        else:
            await conn.execute(DELETE_CHANGED, params)
            await conn.execute(DELETE_CHANGED_SKIPS, params)
        await conn.execute(UPSERT_FILES, params)
        await conn.execute(UPSERT_SKIPS, params)
        await conn.execute(FINISH_SNAPSHOT, params)
        cur = await conn.execute(COUNT_CHANGED)
        row = await cur.fetchone()
    return row[0] if row else 0
