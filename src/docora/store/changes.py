"""Per-watch change detection in SQL, and recording acknowledged deliveries.

A watch's changes are the difference between the repository's snapshot and the
watch's delivered state. They are read a page at a time, in path order, one group
(delete, create, update) after the other, so no step holds the repository in memory.
"""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row

Event = Literal["delete", "create", "update"]
GROUP_ORDER: tuple[Event, ...] = ("delete", "create", "update")


class Change(msgspec.Struct, frozen=True):
    event: str
    path: str
    sha: str
    size: int
    blob_id: str | None
    is_binary: bool
    previous_sha: str | None
    # The content is a Git LFS object (SPEC 13), cached by oid (= sha) beside the mirror.
    lfs: bool = False


# Each page walks one primary key in path order from `after` and looks every row up in the
# other table's primary key. The lookups are LATERAL subqueries with LIMIT 1, which the
# planner cannot turn into a hash or merge join: those read the other side whole, again
# for every page, and were what it chose on tables freshly filled by a sync, whose
# statistics still said "nearly empty" (a 100k-file delivery slowed to a crawl). This
# plan's cost follows the page, whatever the statistics say. The watch's path filter
# (docora_path_included, migrations/0008) is applied outside the lookups, which stay bare
# primary-key probes: inside them it tipped a planner with stale statistics into scanning.
_PAGES: dict[str, str] = {
    "delete": """
SELECT 'delete' AS event, d.path, d.sha, 0::bigint AS size, NULL::text AS blob_id,
       false AS is_binary, NULL::text AS previous_sha, false AS lfs
FROM delivered_files d
LEFT JOIN LATERAL (SELECT 1 AS present FROM snapshot_files s
                   WHERE s.repository_id = d.repository_id AND s.path = d.path LIMIT 1) s
  ON true
WHERE d.app_id = %(app_id)s AND d.repository_id = %(repository_id)s AND d.path > %(after)s
  AND (s.present IS NULL{delete_filter})
ORDER BY d.path LIMIT %(limit)s
""",
    "create": """
SELECT 'create' AS event, s.path, s.sha, s.size, s.blob_id, s.is_binary,
       NULL::text AS previous_sha, s.lfs
FROM snapshot_files s
LEFT JOIN LATERAL (SELECT 1 AS present FROM delivered_files d
                   WHERE d.app_id = %(app_id)s AND d.repository_id = s.repository_id
                     AND d.path = s.path LIMIT 1) d
  ON true
WHERE s.repository_id = %(repository_id)s AND s.path > %(after)s AND d.present IS NULL
{keep_filter}{upto}
ORDER BY s.path LIMIT %(limit)s
""",
    "update": """
SELECT 'update' AS event, s.path, s.sha, s.size, s.blob_id, s.is_binary,
       d.sha AS previous_sha, s.lfs
FROM snapshot_files s
JOIN LATERAL (SELECT d.sha FROM delivered_files d
              WHERE d.app_id = %(app_id)s AND d.repository_id = s.repository_id
                AND d.path = s.path LIMIT 1) d
  ON true
WHERE s.repository_id = %(repository_id)s AND s.path > %(after)s AND d.sha <> s.sha
{keep_filter}
ORDER BY s.path LIMIT %(limit)s
""",
}

# A watch without a filter gets statements without the function at all: with it, even
# short-circuited, a prepared (generic) plan priced the call into every row.
_FILTERED = {
    "delete_filter": " OR NOT docora_path_included(d.path, %(regexes)s, %(includes)s)",
    "keep_filter": "  AND docora_path_included(s.path, %(regexes)s, %(includes)s)",
}
_UNFILTERED = {"delete_filter": "", "keep_filter": ""}
# Creates of a first snapshot still being published: only its final rows (deliver/progress.py).
_UP_TO = "  AND s.path <= %(through)s"


def page_sql(event: str, *, filtered: bool, bounded: bool = False) -> str:
    return _PAGES[event].format_map(
        (_FILTERED if filtered else _UNFILTERED) | {"upto": _UP_TO if bounded else ""}
    )


# Acknowledgements are recorded in batches, each batch by one statement in its own
# transaction. It first locks the watch row at the expected generation (the order every
# writer of a watch's state locks in: every other part waits for `locked`), so after an
# unwatch or a reset an in-flight acknowledgement records nothing. `xmax = 0` marks a
# row the upsert inserted (a file new to the app) rather than updated. The log rows carry
# docora_deliveries_total with them (16 shards per label pair, so that concurrent watches
# do not queue on one row) and the console's per-minute rollup.
#
# The batch travels as one JSON parameter, an array per item (the columns of _ITEMS, in
# order) encoded by msgspec: psycopg dumping a dozen arrays element by element in Python
# took a sixth of a busy worker's time. The parameter count stays fixed whatever the batch.
# An item's kind: what it does to the delivered state.
LOG_ONLY, UPSERT, DELETE = 0, 1, 2
_ITEMS = """
    SELECT (i->>0)::uuid AS delivery_id, i->>1 AS event, i->>2 AS path, i->>3 AS sha,
           i->>4 AS commit_sha, i->>5 AS status, (i->>6)::int AS status_code,
           (i->>7)::int AS latency_ms, (i->>8)::int AS attempt, i->>9 AS error,
           (i->>10)::smallint AS kind, (i->>11)::bigint AS size
    FROM jsonb_array_elements(%(items)s::jsonb) i
"""
_LOG_ROWS = """
    INSERT INTO deliveries (app_id, repository_id, delivery_id, event, path, sha, commit_sha,
                            status, status_code, latency_ms, attempt, error)
    SELECT %(app_id)s, %(repository_id)s, delivery_id, event, path, sha, commit_sha, status,
           status_code, latency_ms, attempt, error
    FROM items
"""
_COUNT_LOGGED = """
    INSERT INTO delivery_totals (event, outcome, shard, n)
    SELECT event, status, abs(hashtext(%(app_id)s || %(repository_id)s)) %% 16, count(*)
    FROM logged GROUP BY event, status
    ON CONFLICT (event, outcome, shard) DO UPDATE SET n = delivery_totals.n + EXCLUDED.n
"""
# The console's per-minute rollup (migrations/0012) of the same rows. Rows are taken in
# bucket order, so two statements of one app's watches lock them in the same order.
_COUNT_MINUTES = """
    INSERT INTO delivery_minutes AS m (minute, app_id, bucket, delivered, failed)
    SELECT date_trunc('minute', now()), %(app_id)s, docora_latency_bucket(latency_ms),
           count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'failed')
    FROM logged GROUP BY 3 ORDER BY 3
    ON CONFLICT (minute, app_id, bucket) DO UPDATE
    SET delivered = m.delivered + EXCLUDED.delivered, failed = m.failed + EXCLUDED.failed
"""
RECORD_ACKNOWLEDGED = f"""
WITH items AS MATERIALIZED ({_ITEMS}), locked AS (
    SELECT 1 FROM watches
    WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
      AND generation = %(generation)s
    FOR NO KEY UPDATE
), upserted AS (
    INSERT INTO delivered_files (app_id, repository_id, path, sha, size)
    SELECT %(app_id)s, %(repository_id)s, path, sha, size FROM items
    WHERE kind = {UPSERT} AND EXISTS (SELECT 1 FROM locked)
    ON CONFLICT (app_id, repository_id, path)
    DO UPDATE SET sha = EXCLUDED.sha, size = EXCLUDED.size, delivered_at = now()
    RETURNING (xmax = 0) AS inserted
), deleted AS (
    DELETE FROM delivered_files
    WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
      -- An array, evaluated once: a probe of the primary key per path (as a subquery the
      -- planner may scan the watch's every delivered file for each batch instead).
      AND path = ANY(ARRAY(SELECT path FROM items WHERE kind = {DELETE}))
      AND EXISTS (SELECT 1 FROM locked)
    RETURNING 1
), counted AS (
    UPDATE watches SET
        files_delivered = files_delivered
            + (SELECT count(*) FILTER (WHERE inserted) FROM upserted)
            - (SELECT count(*) FROM deleted),
        pending_changes = greatest(
            pending_changes - (SELECT count(*) FROM items WHERE kind <> {LOG_ONLY}), 0)
    WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s
      AND EXISTS (SELECT 1 FROM locked)
), logged AS ({_LOG_ROWS}    WHERE EXISTS (SELECT 1 FROM locked)
    RETURNING event, status, latency_ms
), totals AS ({_COUNT_LOGGED}), minutes AS ({_COUNT_MINUTES})
SELECT count(*) FROM locked
"""
# A failed attempt's log row, recorded whatever the watch's generation.
LOG_ATTEMPT = f"""
WITH items AS MATERIALIZED ({_ITEMS}), logged AS ({_LOG_ROWS}    RETURNING event, status, latency_ms
), minutes AS ({_COUNT_MINUTES}){_COUNT_LOGGED}"""


# The manifest: what an app holds of a repository, a keyset page at a time in path byte
# order (one range scan of the primary key per page).
DELIVERED_PAGE = """
SELECT path, sha, size FROM delivered_files
WHERE app_id = %(app_id)s AND repository_id = %(repository_id)s AND path > %(after)s
ORDER BY path LIMIT %(limit)s
"""


class DeliveredFile(msgspec.Struct, frozen=True):
    path: str
    sha: str
    size: int | None


async def delivered_page(
    conn: AsyncConnection, *, app_id: str, repository_id: str, after: str, limit: int
) -> list[DeliveredFile]:
    params = {"app_id": app_id, "repository_id": repository_id, "after": after, "limit": limit}
    async with conn.cursor(row_factory=class_row(DeliveredFile)) as cur:
        await cur.execute(DELIVERED_PAGE, params)
        return await cur.fetchall()


class LogEntry(msgspec.Struct, frozen=True):
    app_id: str
    repository_id: str
    delivery_id: uuid.UUID
    event: str
    path: str | None
    sha: str | None
    commit_sha: str | None
    status: str
    status_code: int | None
    latency_ms: int
    attempt: int
    error: str | None = None


async def change_page(
    conn: AsyncConnection,
    *,
    event: str,
    app_id: str,
    repository_id: str,
    after: str,
    limit: int,
    regexes: list[str] | None = None,
    includes: list[bool] | None = None,
    through: str | None = None,
) -> list[Change]:
    """A page of one group's changes; `regexes` / `includes`: the watch's path filter;
    `through`: creates only, of paths up to this one."""
    sql = page_sql(event, filtered=regexes is not None, bounded=through is not None)
    params = {
        "app_id": app_id,
        "repository_id": repository_id,
        "after": after,
        "limit": limit,
        "regexes": regexes,
        "includes": includes,
        "through": through,
    }
    async with conn.cursor(row_factory=class_row(Change)) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def any_pending(
    conn: AsyncConnection,
    *,
    app_id: str,
    repository_id: str,
    regexes: list[str] | None = None,
    includes: list[bool] | None = None,
) -> bool:
    """Whether the watch lacks anything of the snapshot (one row asked of each group)."""
    for event in GROUP_ORDER:
        page = await change_page(
            conn,
            event=event,
            app_id=app_id,
            repository_id=repository_id,
            after="",
            limit=1,
            regexes=regexes,
            includes=includes,
        )
        if page:
            return True
    return False


async def record_acknowledged(
    conn: AsyncConnection, batch: list[tuple[Change | None, LogEntry]], *, generation: int
) -> bool:
    """Record acknowledged events (delivered state, counters, log rows) in one transaction.

    An item without a change is a log row only (a chunk before the last one). False when
    the watch is gone or was reset meanwhile: nothing is recorded then.
    """
    first = batch[0][1]
    params = {
        "app_id": first.app_id,
        "repository_id": first.repository_id,
        "generation": generation,
        "items": _items(batch),
    }
    async with conn.transaction():
        # The commit returns without waiting for the WAL flush: a worker crash loses
        # nothing committed; a Postgres crash may lose the last few hundred milliseconds
        # of acknowledgements, whose events are then sent again (at-least-once).
        await conn.execute("SET LOCAL synchronous_commit = off")
        cur = await conn.execute(RECORD_ACKNOWLEDGED, params)
        row = await cur.fetchone()
    return row is not None and row[0] > 0


_json = msgspec.json.Encoder()


def _kind(change: Change | None) -> int:
    if change is None:
        return LOG_ONLY
    return DELETE if change.event == "delete" else UPSERT


def _items(batch: list[tuple[Change | None, LogEntry]]) -> str:
    """The batch as the statements' `items` parameter: an array per item (_ITEMS' columns).
    A log entry names the change it acknowledges (path, sha); a delete has no size."""
    rows = [
        (
            e.delivery_id,
            e.event,
            e.path,
            e.sha,
            e.commit_sha,
            e.status,
            e.status_code,
            e.latency_ms,
            e.attempt,
            e.error,
            _kind(change),
            change.size if change is not None and change.event != "delete" else None,
        )
        for change, e in batch
    ]
    return _json.encode(rows).decode()


async def log_attempt(conn: AsyncConnection, log: LogEntry) -> None:
    params = {
        "app_id": log.app_id,
        "repository_id": log.repository_id,
        "items": _items([(None, log)]),
    }
    await conn.execute(LOG_ATTEMPT, params)
