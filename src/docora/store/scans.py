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
    deleted boolean NOT NULL,
    -- Set for a Git LFS pointer whose object was resolved (SPEC 13): the content's facts.
    lfs_oid text,
    lfs_size bigint,
    lfs_binary boolean
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
# An LFS pointer's row carries the object's facts; the same blob read as a plain file
# (LFS turned off, attributes changed) has another sha, so the row is rewritten then too.
# Only paths after `after` ({through}: and up to `through`): the parts a progressive
# snapshot published already are not compared again.
_UPSERT_FILES = """
INSERT INTO snapshot_files (repository_id, path, sha, size, blob_id, is_binary, lfs)
SELECT %(repository_id)s, w.path, coalesce(w.lfs_oid, f.sha), coalesce(w.lfs_size, f.size),
    w.blob_id, coalesce(w.lfs_binary, f.is_binary), w.lfs_oid IS NOT NULL
FROM scan_work w JOIN blob_facts f
  ON f.repository_id = %(repository_id)s AND f.blob_id = w.blob_id
WHERE w.path > %(after)s{through}
ON CONFLICT (repository_id, path) DO UPDATE SET
    sha = EXCLUDED.sha, size = EXCLUDED.size, blob_id = EXCLUDED.blob_id,
    is_binary = EXCLUDED.is_binary, lfs = EXCLUDED.lfs
WHERE (snapshot_files.blob_id, snapshot_files.sha)
    IS DISTINCT FROM (EXCLUDED.blob_id, EXCLUDED.sha)
"""
UPSERT_FILES = _UPSERT_FILES.format(through="")
UPSERT_PART = _UPSERT_FILES.format(through=" AND w.path <= %(through)s")
# A part of a first snapshot (migrations/0013): the rows up to `through` are final. The
# first part also drops what a scan of another commit left published before it stopped.
START_PARTS = """
INSERT INTO snapshots (repository_id, commit_sha, partial_commit, partial_through)
VALUES (%(repository_id)s, NULL, %(commit_sha)s, '')
ON CONFLICT (repository_id) DO UPDATE
SET partial_commit = EXCLUDED.partial_commit, partial_through = ''
WHERE snapshots.commit_sha IS NULL
"""
PUBLISH_PART = """
UPDATE snapshots SET partial_through = %(through)s
WHERE repository_id = %(repository_id)s AND partial_commit = %(commit_sha)s
"""
UPSERT_SKIPS = """
INSERT INTO snapshot_skipped (repository_id, path, reason)
SELECT %(repository_id)s, w.path, w.skip_reason FROM scan_work w WHERE w.skip_reason IS NOT NULL
ON CONFLICT (repository_id, path) DO UPDATE SET reason = EXCLUDED.reason
"""
FINISH_SNAPSHOT = """
UPDATE snapshots SET commit_sha = %(commit_sha)s, scanned_at = now(),
    fetch_count = fetch_count + 1, blobs_hashed = blobs_hashed + %(hashed)s,
    file_count = t.files, total_bytes = t.bytes, lfs_resolved = %(lfs_resolved)s,
    lfs_objects = t.lfs_objects, lfs_bytes = t.lfs_bytes,
    partial_commit = NULL, partial_through = NULL
FROM (SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes,
             count(*) FILTER (WHERE lfs) AS lfs_objects,
             coalesce(sum(size) FILTER (WHERE lfs), 0) AS lfs_bytes
      FROM snapshot_files WHERE repository_id = %(repository_id)s) t
WHERE repository_id = %(repository_id)s
"""
COUNT_CHANGED = "SELECT count(*) FROM scan_work"

# Files small enough to be LFS pointers (POINTER_MAX_BYTES), in path order.
SMALL_FILES = """
SELECT path, blob_id FROM scan_work
WHERE blob_id IS NOT NULL AND size <= %(max_size)s ORDER BY path
"""
SET_LFS = """
UPDATE scan_work SET lfs_oid = %(oid)s, lfs_size = %(size)s, lfs_binary = %(is_binary)s
WHERE path = %(path)s
"""
SKIP_LFS = """
UPDATE scan_work SET blob_id = NULL, size = NULL, skip_reason = %(reason)s WHERE path = %(path)s
"""


class LfsContent(msgspec.Struct, frozen=True):
    """What an LFS pointer at `path` resolved to."""

    path: str
    oid: str
    size: int
    is_binary: bool


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


async def small_files(conn: AsyncConnection, max_size: int) -> list[tuple[str, str]]:
    """(path, blob id) of the listed files of at most `max_size` bytes."""
    cur = await conn.execute(SMALL_FILES, {"max_size": max_size})
    return [(row[0], row[1]) for row in await cur.fetchall()]


async def set_lfs(conn: AsyncConnection, contents: list[LfsContent]) -> None:
    if contents:
        async with conn.cursor() as cur:
            await cur.executemany(SET_LFS, [msgspec.structs.asdict(c) for c in contents])


async def skip_paths(conn: AsyncConnection, skipped: list[tuple[str, str]]) -> None:
    """Turn listed files into skipped ones: (path, reason)."""
    if skipped:
        async with conn.cursor() as cur:
            await cur.executemany(SKIP_LFS, [{"path": p, "reason": r} for p, r in skipped])


async def start_parts(conn: AsyncConnection, repository_id: str, commit_sha: str) -> None:
    """Begin publishing a first snapshot in parts: nothing of it is final yet, and rows a
    stopped scan published that the work table does not list are gone."""
    params = {"repository_id": repository_id, "commit_sha": commit_sha}
    async with conn.transaction():
        await conn.execute(START_PARTS, params)
        await conn.execute(DELETE_UNLISTED, params)


async def publish_part(
    conn: AsyncConnection, repository_id: str, commit_sha: str, *, after: str, through: str
) -> None:
    """Make the rows of paths in (after, through] final, and say so, in one transaction.
    Every path up to `through` must have its blob facts."""
    params = {
        "repository_id": repository_id,
        "commit_sha": commit_sha,
        "after": after,
        "through": through,
    }
    async with conn.transaction():
        await conn.execute(UPSERT_PART, params)
        await conn.execute(PUBLISH_PART, params)


async def apply_work(
    conn: AsyncConnection,
    repository_id: str,
    commit_sha: str,
    *,
    full: bool,
    hashed: int,
    lfs_resolved: bool = False,
    published: str = "",
) -> int:
    """Make the snapshot match the work table in one transaction; return paths examined.
    `published`: the paths up to it are final already (publish_part)."""
    params = {
        "repository_id": repository_id,
        "commit_sha": commit_sha,
        "hashed": hashed,
        "lfs_resolved": lfs_resolved,
        "after": published,
    }
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
