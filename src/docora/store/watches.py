"""Repositories and watches (app <-> repository links), as the API sees them."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from docora.store.sync import close_circuit


class RepositoryRow(msgspec.Struct, frozen=True):
    id: str
    url: str
    host: str
    owner: str
    name: str
    branch: str
    is_private: bool
    consecutive_failures: int
    cooldown_until: datetime | None
    created_at: datetime


class WatchRow(msgspec.Struct, frozen=True):
    repository_id: str
    url: str
    owner: str
    name: str
    branch: str
    is_private: bool
    repository_created_at: datetime
    status: str
    retry_count: int
    last_error: str | None
    last_scanned_at: datetime | None
    commit_sha: str | None
    consecutive_failures: int
    cooldown_until: datetime | None
    circuit_opened_at: datetime | None
    created_at: datetime


class WatchCounts(msgspec.Struct, frozen=True):
    files_delivered: int
    pending_changes: int | None


_REPOSITORY_COLUMNS = """id, url, host, owner, name, branch, is_private,
    consecutive_failures, cooldown_until, created_at"""

UPSERT_REPOSITORY = f"""
INSERT INTO repositories (id, url, host, owner, name, branch, is_private)
VALUES (%(id)s, %(url)s, %(host)s, %(owner)s, %(name)s, %(branch)s, %(is_private)s)
ON CONFLICT (id) DO UPDATE SET is_private = EXCLUDED.is_private, updated_at = now()
RETURNING {_REPOSITORY_COLUMNS}
"""

# A re-registration is a fresh start: new token, cleared errors, nothing delivered.
UPSERT_WATCH = """
INSERT INTO watches (app_id, repository_id, token_enc)
VALUES (%(app_id)s, %(repository_id)s, %(token_enc)s)
ON CONFLICT (app_id, repository_id) DO UPDATE SET
    token_enc = EXCLUDED.token_enc,
    status = 'pending_snapshot',
    retry_count = 0,
    last_error = NULL,
    last_scanned_at = NULL,
    commit_sha = NULL,
    verified_commit = NULL,
    next_check_at = now(),
    generation = watches.generation + 1,
    updated_at = now()
"""

DELETE_DELIVERED_STATE = """
DELETE FROM delivered_files WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
"""

_WATCH_SELECT = """
SELECT r.id AS repository_id, r.url, r.owner, r.name, r.branch, r.is_private,
       r.created_at AS repository_created_at,
       w.status, w.retry_count, w.last_error, w.last_scanned_at, w.commit_sha,
       r.consecutive_failures, r.cooldown_until, r.circuit_opened_at, w.created_at
FROM watches w JOIN repositories r ON r.id = w.repository_id
"""

SELECT_WATCHES = _WATCH_SELECT + "WHERE w.app_id = %s ORDER BY w.created_at, r.id"

SELECT_WATCH = _WATCH_SELECT + "WHERE w.app_id = %s AND w.repository_id = %s"

SELECT_WATCH_COUNTS = """
SELECT
  (SELECT count(*) FROM delivered_files d
    WHERE d.app_id = %(app_id)s AND d.repository_id = %(repository_id)s) AS files_delivered,
  CASE WHEN EXISTS (SELECT 1 FROM snapshots s WHERE s.repository_id = %(repository_id)s) THEN
    (SELECT count(*) FROM snapshot_files s
      LEFT JOIN delivered_files d
        ON d.app_id = %(app_id)s AND d.repository_id = s.repository_id AND d.path = s.path
      WHERE s.repository_id = %(repository_id)s AND d.sha IS DISTINCT FROM s.sha)
    + (SELECT count(*) FROM delivered_files d
        WHERE d.app_id = %(app_id)s AND d.repository_id = %(repository_id)s
          AND NOT EXISTS (SELECT 1 FROM snapshot_files s
                          WHERE s.repository_id = d.repository_id AND s.path = d.path))
  END AS pending_changes
"""

DELETE_WATCH = "DELETE FROM watches WHERE app_id = %s AND repository_id = %s"

UPDATE_WATCH_TOKEN = """
UPDATE watches SET token_enc = %(token_enc)s, status = 'pending_snapshot', retry_count = 0,
    verified_commit = NULL,
    last_error = NULL, next_check_at = now(), updated_at = now()
WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
"""

# A resync keeps the delivered state (only what changed is sent) and the status, which
# changes when the queued sync actually runs.
MARK_RESYNC = """
UPDATE watches SET next_check_at = now(), updated_at = now()
WHERE app_id = %s AND repository_id = %s
"""


async def upsert_repository(conn: AsyncConnection, **values) -> RepositoryRow:
    async with conn.cursor(row_factory=class_row(RepositoryRow)) as cur:
        await cur.execute(UPSERT_REPOSITORY, values)
        row = await cur.fetchone()
    assert row is not None
    return row


async def reset_watch(
    conn: AsyncConnection, *, app_id: str, repository_id: str, token_enc: bytes | None
) -> None:
    """Create the watch, or reset an existing one to a fresh full sync (one transaction)."""
    params = {"app_id": app_id, "repository_id": repository_id, "token_enc": token_enc}
    async with conn.transaction():
        await conn.execute(UPSERT_WATCH, params)
        await conn.execute(DELETE_DELIVERED_STATE, params)


async def list_watches(conn: AsyncConnection, app_id: str) -> list[WatchRow]:
    async with conn.cursor(row_factory=class_row(WatchRow)) as cur:
        await cur.execute(SELECT_WATCHES, (app_id,))
        return await cur.fetchall()


async def get_watch(conn: AsyncConnection, app_id: str, repository_id: str) -> WatchRow | None:
    async with conn.cursor(row_factory=class_row(WatchRow)) as cur:
        await cur.execute(SELECT_WATCH, (app_id, repository_id))
        return await cur.fetchone()


async def watch_counts(conn: AsyncConnection, app_id: str, repository_id: str) -> WatchCounts:
    async with conn.cursor(row_factory=class_row(WatchCounts)) as cur:
        await cur.execute(SELECT_WATCH_COUNTS, {"app_id": app_id, "repository_id": repository_id})
        row = await cur.fetchone()
    assert row is not None
    return row


async def delete_watch(conn: AsyncConnection, app_id: str, repository_id: str) -> bool:
    cur = await conn.execute(DELETE_WATCH, (app_id, repository_id))
    return cur.rowcount > 0


async def replace_token(
    conn: AsyncConnection, *, app_id: str, repository_id: str, token_enc: bytes
) -> None:
    """New token: errors cleared and the repository's circuit breaker closed."""
    params = {"app_id": app_id, "repository_id": repository_id, "token_enc": token_enc}
    async with conn.transaction():
        await conn.execute(UPDATE_WATCH_TOKEN, params)
        await close_circuit(conn, repository_id)


async def mark_resync(conn: AsyncConnection, app_id: str, repository_id: str) -> None:
    await conn.execute(MARK_RESYNC, (app_id, repository_id))
