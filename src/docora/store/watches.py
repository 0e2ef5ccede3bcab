"""Watches (app <-> repository links): status, delivered-state resets, the scheduler's
claim, and the reads the API and the worker make of them."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

from docora.store import repositories
from docora.store.apps import like_pattern
from docora.store.repositories import Repository
from docora.store.sql import filtered


class Watch(msgspec.Struct, frozen=True):
    app_id: str
    repository_id: str
    status: str
    retry_count: int
    last_error: str | None
    last_scanned_at: datetime | None
    commit_sha: str | None
    generation: int
    token_enc: bytes | None
    verified_commit: str | None
    created_at: datetime
    # Kept with the delivered state (migrations/0005): reading them is free.
    files_delivered: int
    pending_changes: int | None
    # The watch's path filter (SPEC 11; scan/filters.py): None for every file.
    paths: list[str] | None
    path_regexes: list[str] | None
    path_includes: list[bool] | None
    paths_version: int  # bumped by each filter change (part of delivery ids)


WATCH_COLUMNS = ", ".join(f"w.{f}" for f in Watch.__struct_fields__)
_WATCH_WIDTH = len(Watch.__struct_fields__)

SELECT_WATCH = f"SELECT {WATCH_COLUMNS} FROM watches w WHERE w.app_id = %s AND w.repository_id = %s"
SELECT_REPOSITORY_WATCHES = (
    f"SELECT {WATCH_COLUMNS} FROM watches w WHERE w.repository_id = %s ORDER BY w.app_id"
)
# A watch with its repository, as the API shows them.
_JOINED = f"""
SELECT {WATCH_COLUMNS}, {repositories.COLUMNS}
FROM watches w JOIN {repositories.FROM} ON r.id = w.repository_id
"""
SELECT_APP_WATCHES = _JOINED + "WHERE w.app_id = %s ORDER BY w.created_at, r.id"
SELECT_APP_WATCH = _JOINED + "WHERE w.app_id = %s AND w.repository_id = %s"

DELETE_DELIVERED_STATE = """
DELETE FROM delivered_files WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
"""

# A re-registration is a fresh start: new token, cleared errors, nothing delivered (the
# delivered state goes in the same statement, one round trip).
RESET_WATCH = f"""
WITH upserted AS (
INSERT INTO watches (app_id, repository_id, token_enc, pending_changes, paths, path_regexes,
                     path_includes)
VALUES (%(app_id)s, %(repository_id)s, %(token_enc)s,
        (SELECT file_count FROM snapshots WHERE repository_id = %(repository_id)s),
        %(paths)s, %(path_regexes)s, %(path_includes)s)
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
    files_delivered = 0,
    pending_changes = EXCLUDED.pending_changes,
    paths = EXCLUDED.paths,
    path_regexes = EXCLUDED.path_regexes,
    path_includes = EXCLUDED.path_includes,
    updated_at = now()
RETURNING 1
){DELETE_DELIVERED_STATE}"""

# A new filter: the next sync hands the snapshot out again (a watch that is not `synced`
# gets a delivery), which sends the creates and deletes the change implies.
SET_PATHS = """
UPDATE watches SET paths = %(paths)s, path_regexes = %(path_regexes)s,
    path_includes = %(path_includes)s, paths_version = paths_version + 1,
    next_check_at = now(), updated_at = now(),
    status = CASE WHEN status = 'synced' THEN 'pending_snapshot' ELSE status END
WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
"""

# What the app lacks of the snapshot (the part its path filter includes): creates + updates
# + deletes, which is
#   files in the snapshot + files delivered - paths in both - paths in both at the same sha,
# so one walk over the delivered files (each looked up in the snapshot by index, LATERAL ...
# LIMIT 1 as in store/changes.py, whatever the statistics; the filter is applied outside the
# lookup, which must stay a bare primary-key probe) and the snapshot's file count give it.
# An initial delivery walks nothing. Run by each delivery as it starts, never by a read.
REFRESH_PENDING = """
UPDATE watches w SET pending_changes = (
    SELECT CASE WHEN w.path_regexes IS NULL THEN s.file_count
                ELSE (SELECT count(*) FROM snapshot_files f
                      WHERE f.repository_id = w.repository_id
                        AND docora_path_included(f.path, w.path_regexes, w.path_includes))
           END
           + count(*) - count(f.sha) - count(*) FILTER (WHERE f.sha = d.sha)
    FROM delivered_files d
    LEFT JOIN LATERAL (SELECT f.sha FROM snapshot_files f
                       WHERE f.repository_id = d.repository_id AND f.path = d.path
                       LIMIT 1) f
      ON w.path_regexes IS NULL OR docora_path_included(d.path, w.path_regexes, w.path_includes)
    WHERE d.app_id = w.app_id AND d.repository_id = w.repository_id
)
FROM snapshots s
WHERE s.repository_id = w.repository_id
  AND w.repository_id = %(repository_id)s AND w.app_id = ANY(%(app_ids)s)
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

# The synced watches of repositories whose tip had not moved: checked now, next at their
# phase of the interval (docora_next_check, migrations/0009, so that many repositories'
# checks spread over it). For one repository or a batch of checks (store/checks.py).
ALL_SYNCED_AT = """
SELECT NOT EXISTS (SELECT 1 FROM watches WHERE repository_id = %(repository_id)s
                   AND (status <> 'synced' OR commit_sha IS DISTINCT FROM %(commit_sha)s))
"""


async def all_synced_at(conn: AsyncConnection, repository_id: str, commit_sha: str) -> bool:
    """Whether every watch of the repository is synced at `commit_sha`."""
    cur = await conn.execute(
        ALL_SYNCED_AT, {"repository_id": repository_id, "commit_sha": commit_sha}
    )
    row = await cur.fetchone()
    return bool(row and row[0])


MARK_CHECKED = """
UPDATE watches SET last_scanned_at = now(),
    next_check_at = docora_next_check(repository_id, %(rescan)s)
WHERE repository_id = ANY(%(checked_ids)s) AND status = 'synced'
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

# Locked until the caller's transaction ends: a delivery marking one synced meanwhile waits.
NOT_SYNCED_AT = """
SELECT app_id FROM watches
WHERE repository_id = %(repository_id)s AND app_id = ANY(%(app_ids)s)
  AND (status <> 'synced' OR commit_sha IS DISTINCT FROM %(commit)s)
ORDER BY app_id
FOR NO KEY UPDATE
"""

MARK_SYNCED = """
UPDATE watches SET status = 'synced', commit_sha = %(commit_sha)s, last_error = NULL,
    retry_count = 0, last_scanned_at = now(), pending_changes = 0,
    next_check_at = docora_next_check(repository_id, %(rescan)s), updated_at = now()
WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s AND generation = %(generation)s
  AND verified_commit IS NOT DISTINCT FROM %(commit_sha)s
"""


def _split(row: tuple) -> tuple[Watch, Repository]:
    return Watch(*row[:_WATCH_WIDTH]), Repository(*row[_WATCH_WIDTH:])


async def get_watch(conn: AsyncConnection, app_id: str, repository_id: str) -> Watch | None:
    async with conn.cursor(row_factory=class_row(Watch)) as cur:
        await cur.execute(SELECT_WATCH, (app_id, repository_id))
        return await cur.fetchone()


async def watches_of_repository(conn: AsyncConnection, repository_id: str) -> list[Watch]:
    async with conn.cursor(row_factory=class_row(Watch)) as cur:
        await cur.execute(SELECT_REPOSITORY_WATCHES, (repository_id,))
        return await cur.fetchall()


async def app_watches(conn: AsyncConnection, app_id: str) -> list[tuple[Watch, Repository]]:
    cur = await conn.execute(SELECT_APP_WATCHES, (app_id,))
    return [_split(row) for row in await cur.fetchall()]


async def app_watch(
    conn: AsyncConnection, app_id: str, repository_id: str
) -> tuple[Watch, Repository] | None:
    cur = await conn.execute(SELECT_APP_WATCH, (app_id, repository_id))
    row = await cur.fetchone()
    return _split(row) if row else None


class FilterColumns(msgspec.Struct, frozen=True):
    """A path filter as stored: the patterns and their compiled forms (scan/filters.py)."""

    paths: list[str]
    path_regexes: list[str]
    path_includes: list[bool]


def _filter_params(path_filter: FilterColumns | None) -> dict:
    if path_filter is None:
        return {"paths": None, "path_regexes": None, "path_includes": None}
    return msgspec.structs.asdict(path_filter)


async def reset_watch(
    conn: AsyncConnection,
    *,
    app_id: str,
    repository_id: str,
    token_enc: bytes | None,
    path_filter: FilterColumns | None = None,
) -> None:
    """Create the watch, or reset an existing one to a fresh full sync (one statement)."""
    params = {
        "app_id": app_id,
        "repository_id": repository_id,
        "token_enc": token_enc,
        **_filter_params(path_filter),
    }
    await conn.execute(RESET_WATCH, params)


async def set_paths(
    conn: AsyncConnection, app_id: str, repository_id: str, path_filter: FilterColumns | None
) -> bool:
    """Change the watch's filter; the caller queues the sync in the same transaction."""
    params = {"app_id": app_id, "repository_id": repository_id, **_filter_params(path_filter)}
    cur = await conn.execute(SET_PATHS, params)
    return cur.rowcount > 0


async def refresh_pending(conn: AsyncConnection, repository_id: str, app_ids: list[str]) -> None:
    """Count what each watch lacks of the current snapshot (the worker does this)."""
    await conn.execute(REFRESH_PENDING, {"repository_id": repository_id, "app_ids": app_ids})


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
        await repositories.close_circuit(conn, repository_id)


async def mark_resync(conn: AsyncConnection, app_id: str, repository_id: str) -> None:
    await conn.execute(MARK_RESYNC, (app_id, repository_id))


async def mark_checked(conn: AsyncConnection, repository_id: str, *, rescan_ms: int) -> None:
    await conn.execute(MARK_CHECKED, {"checked_ids": [repository_id], "rescan": rescan_ms})


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


async def not_synced_at(
    conn: AsyncConnection, repository_id: str, app_ids: list[str], commit: str | None
) -> list[str]:
    """Those of the watches not synced at `commit`, locked for the caller's transaction."""
    cur = await conn.execute(
        NOT_SYNCED_AT, {"repository_id": repository_id, "app_ids": app_ids, "commit": commit}
    )
    return [row[0] for row in await cur.fetchall()]


async def set_verified(
    conn: AsyncConnection, repository_id: str, app_ids: list[str], commit: str | None
) -> None:
    await conn.execute(
        SET_VERIFIED, {"repository_id": repository_id, "app_ids": app_ids, "commit": commit}
    )


# --- the operator's view ---------------------------------------------------------------


class AdminWatch(msgspec.Struct, frozen=True):
    watch: Watch
    repository: Repository
    app_name: str


# Failing first, as an operator wants them: statuses sort failed, pending_snapshot,
# retrying, scanning, synced, so the order is the index's (watches_status_idx, or
# watches_app_status_idx with an app). Filters are put in only when given, so that every
# statement the planner sees can use its index.
ADMIN_WATCHES = f"""
SELECT {WATCH_COLUMNS}, {repositories.COLUMNS}, a.name AS app_name
FROM watches w
JOIN {repositories.FROM} ON r.id = w.repository_id
JOIN apps a ON a.id = w.app_id
WHERE {{conditions}}
ORDER BY w.status, w.app_id, w.repository_id
LIMIT %(limit)s
"""
ADMIN_WATCH_FILTERS = {
    "statuses": "w.status = ANY(%(statuses)s)",
    "app_ids": "w.app_id = ANY(%(app_ids)s)",
    "repository_id": "w.repository_id = %(repository_id)s",
    "search": "(r.url ILIKE %(pattern)s OR a.name ILIKE %(pattern)s"
    " OR w.repository_id = %(search)s OR w.app_id = %(search)s)",
    "after": "(w.status, w.app_id, w.repository_id)"
    " > (%(after_status)s, %(after_app)s, %(after_repository)s)",
}


_REPOSITORY_WIDTH = len(Repository.__struct_fields__)

# retry: clear the error and the attempt count, look again now.
RETRY_WATCH = """
UPDATE watches SET retry_count = 0, last_error = NULL, next_check_at = now(), updated_at = now(),
    status = CASE WHEN status IN ('failed', 'retrying') THEN 'pending_snapshot' ELSE status END
WHERE app_id = %s AND repository_id = %s
"""

# resync: forget what the app holds; every file goes again as `create`. The new generation
# stops a delivery still running for the old one (its acknowledgements no longer record).
RESYNC_WATCH = """
UPDATE watches SET status = 'pending_snapshot', retry_count = 0, last_error = NULL,
    last_scanned_at = NULL, commit_sha = NULL, verified_commit = NULL, next_check_at = now(),
    generation = generation + 1, files_delivered = 0,
    pending_changes = (SELECT file_count FROM snapshots WHERE repository_id = %(repository_id)s),
    updated_at = now()
WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
"""


async def admin_watch_page(
    conn: AsyncConnection,
    *,
    statuses: list[str] | None,
    app_ids: list[str] | None,
    repository_id: str | None,
    search: str | None,
    after: tuple[str, str, str] | None,
    limit: int,
) -> list[AdminWatch]:
    params = {
        "statuses": statuses,
        "app_ids": app_ids,
        "repository_id": repository_id,
        "pattern": like_pattern(search) if search else None,
        "search": search,
        "after_status": after[0] if after else None,
        "after_app": after[1] if after else None,
        "after_repository": after[2] if after else None,
        "limit": limit,
    }
    given = {
        "statuses": statuses,
        "app_ids": app_ids,
        "repository_id": repository_id,
        "search": search,
        "after": after,
    }
    cur = await conn.execute(filtered(ADMIN_WATCHES, ADMIN_WATCH_FILTERS, given), params)
    page = []
    for row in await cur.fetchall():
        watch, repo = _split(row[: _WATCH_WIDTH + _REPOSITORY_WIDTH])
        page.append(AdminWatch(watch, repo, row[_WATCH_WIDTH + _REPOSITORY_WIDTH]))
    return page


async def retry_watch(conn: AsyncConnection, app_id: str, repository_id: str) -> bool:
    """Clear the error and attempts and close the repository's circuit breaker (an operator
    asking for a retry wants a real attempt); the caller queues the sync. In a transaction."""
    cur = await conn.execute(RETRY_WATCH, (app_id, repository_id))
    if cur.rowcount == 0:
        return False
    await repositories.close_circuit(conn, repository_id)
    return True


async def resync_watch(conn: AsyncConnection, app_id: str, repository_id: str) -> bool:
    """Forget the delivered state; the caller queues the sync in the same transaction."""
    params = {"app_id": app_id, "repository_id": repository_id}
    cur = await conn.execute(RESYNC_WATCH, params)
    if cur.rowcount == 0:
        return False
    await conn.execute(DELETE_DELIVERED_STATE, params)
    return True
