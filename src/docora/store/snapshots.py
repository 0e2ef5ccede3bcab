"""A repository's current snapshot: its commit and files (path, sha, size, blob, binary)."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from docora.scan.hashing import BlobFacts, ScannedFile
from docora.scan.tree import SkippedFile

SELECT_COMMIT = "SELECT commit_sha FROM snapshots WHERE repository_id = %s"

SELECT_BLOB_FACTS = """
SELECT DISTINCT ON (blob_id) blob_id, sha, is_binary FROM snapshot_files WHERE repository_id = %s
"""

UPSERT_SNAPSHOT = """
INSERT INTO snapshots (repository_id, commit_sha, file_count, total_bytes, skipped, scanned_at)
VALUES (%(repository_id)s, %(commit_sha)s, %(file_count)s, %(total_bytes)s, %(skipped)s, now())
ON CONFLICT (repository_id) DO UPDATE SET
    commit_sha = EXCLUDED.commit_sha, file_count = EXCLUDED.file_count,
    total_bytes = EXCLUDED.total_bytes, skipped = EXCLUDED.skipped, scanned_at = now()
"""

DELETE_FILES = "DELETE FROM snapshot_files WHERE repository_id = %s"

COPY_FILES = """
COPY snapshot_files (repository_id, path, sha, size, blob_id, is_binary) FROM STDIN
"""

SELECT_SKIPPED = "SELECT skipped FROM snapshots WHERE repository_id = %s"


async def current_commit(conn: AsyncConnection, repository_id: str) -> str | None:
    cur = await conn.execute(SELECT_COMMIT, (repository_id,))
    row = await cur.fetchone()
    return row[0] if row else None


async def known_blob_facts(conn: AsyncConnection, repository_id: str) -> dict[str, BlobFacts]:
    cur = await conn.execute(SELECT_BLOB_FACTS, (repository_id,))
    return {blob: BlobFacts(sha, binary) async for blob, sha, binary in cur}


async def replace_snapshot(
    conn: AsyncConnection,
    repository_id: str,
    commit_sha: str,
    files: Sequence[ScannedFile],
    skipped: Sequence[SkippedFile],
) -> None:
    """Swap in the new snapshot atomically (COPY: no parameter count grows with the repo)."""
    params = {
        "repository_id": repository_id,
        "commit_sha": commit_sha,
        "file_count": len(files),
        "total_bytes": sum(f.size for f in files),
        "skipped": Jsonb(msgspec.to_builtins(list(skipped))),
    }
    async with conn.transaction():
        await conn.execute(UPSERT_SNAPSHOT, params)
        await conn.execute(DELETE_FILES, (repository_id,))
        async with conn.cursor() as cur, cur.copy(COPY_FILES) as copy:
            for f in files:
                await copy.write_row((repository_id, f.path, f.sha, f.size, f.blob_id, f.is_binary))


async def skipped_files(conn: AsyncConnection, repository_id: str) -> list[dict]:
    cur = await conn.execute(SELECT_SKIPPED, (repository_id,))
    row = await cur.fetchone()
    return row[0] if row else []
