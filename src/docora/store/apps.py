"""The apps table: client apps, their token digests and encrypted signing keys."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row


class AppRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    base_url: str
    email: str
    website: str | None
    description: str | None
    client_auth_key_enc: bytes
    delivery_concurrency: int
    delivery_mode: str  # single | batch
    created_at: datetime
    updated_at: datetime


_COLUMNS = """id, name, base_url, email, website, description, client_auth_key_enc,
    delivery_concurrency, delivery_mode, created_at, updated_at"""

INSERT_APP = f"""
INSERT INTO apps (id, name, base_url, email, website, description, token_digest,
                  client_auth_key_enc, delivery_concurrency, delivery_mode)
VALUES (%(id)s, %(name)s, %(base_url)s, %(email)s, %(website)s, %(description)s,
        %(token_digest)s, %(client_auth_key_enc)s, %(delivery_concurrency)s, %(delivery_mode)s)
RETURNING {_COLUMNS}
"""

# One indexed lookup; the caller still compares digests in constant time.
SELECT_BY_TOKEN_DIGEST = f"SELECT {_COLUMNS}, token_digest FROM apps WHERE token_digest = %s"

SELECT_BY_ID = f"SELECT {_COLUMNS} FROM apps WHERE id = %s"

SELECT_ALL = f"SELECT {_COLUMNS} FROM apps ORDER BY created_at, id"

UPDATE_APP = f"""
UPDATE apps SET
    base_url = coalesce(%(base_url)s, base_url),
    delivery_concurrency = coalesce(%(delivery_concurrency)s, delivery_concurrency),
    delivery_mode = coalesce(%(delivery_mode)s, delivery_mode),
    client_auth_key_enc = coalesce(%(client_auth_key_enc)s, client_auth_key_enc),
    updated_at = now()
WHERE id = %(id)s
RETURNING {_COLUMNS}
"""


async def insert_app(conn: AsyncConnection, **values) -> AppRow:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(INSERT_APP, values)
        row = await cur.fetchone()
    assert row is not None
    return row


async def find_by_token_digest(conn: AsyncConnection, digest: bytes) -> tuple[AppRow, bytes] | None:
    async with conn.cursor() as cur:
        await cur.execute(SELECT_BY_TOKEN_DIGEST, (digest,))
        row = await cur.fetchone()
    if row is None:
        return None
    *fields, stored_digest = row
    return AppRow(*fields), bytes(stored_digest)


async def get_app(conn: AsyncConnection, app_id: str) -> AppRow | None:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(SELECT_BY_ID, (app_id,))
        return await cur.fetchone()


async def list_apps(conn: AsyncConnection) -> list[AppRow]:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(SELECT_ALL)
        return await cur.fetchall()


async def update_app(
    conn: AsyncConnection,
    app_id: str,
    *,
    base_url: str | None = None,
    delivery_concurrency: int | None = None,
    delivery_mode: str | None = None,
    client_auth_key_enc: bytes | None = None,
) -> AppRow:
    async with conn.cursor(row_factory=class_row(AppRow)) as cur:
        await cur.execute(
            UPDATE_APP,
            {
                "id": app_id,
                "base_url": base_url,
                "delivery_concurrency": delivery_concurrency,
                "delivery_mode": delivery_mode,
                "client_auth_key_enc": client_auth_key_enc,
            },
        )
        row = await cur.fetchone()
    assert row is not None
    return row


# --- the operator's view ---------------------------------------------------------------


class AppSummary(msgspec.Struct, frozen=True):
    id: str
    name: str
    email: str
    base_url: str
    delivery_concurrency: int
    created_at: datetime
    repositories: int
    failed: int
    sort_value: str  # the sort key as text, for the next page's cursor


# sort -> (key expression over the listed row, SQL type of the key)
APP_SORTS = {
    "app_name": ("lower(a.name)", "text"),
    "created_at": ("a.created_at", "timestamptz"),
    "failed": (
        "(SELECT count(*) FROM watches f WHERE f.app_id = a.id AND f.status = 'failed')",
        "bigint",
    ),
}


def _app_page_sql(sort: str, descending: bool, *, after: bool, search: bool) -> str:
    """Conditions only when given, so that the planner always sees the index's order."""
    key, kind = APP_SORTS[sort]
    direction, compare = ("DESC", "<") if descending else ("ASC", ">")
    conditions = ["true"]
    if search:
        conditions.append(
            "(a.name ILIKE %(pattern)s OR a.email ILIKE %(pattern)s OR a.id = %(search)s)"
        )
    if after:
        conditions.append(f"({key}, a.id) {compare} (%(after_value)s::{kind}, %(after_id)s)")
    return f"""
SELECT a.id, a.name, a.email, a.base_url, a.delivery_concurrency, a.created_at,
       (SELECT count(*) FROM watches w WHERE w.app_id = a.id) AS repositories,
       (SELECT count(*) FROM watches w WHERE w.app_id = a.id AND w.status = 'failed') AS failed,
       ({key})::text AS sort_value
FROM apps a
WHERE {" AND ".join(conditions)}
ORDER BY {key} {direction}, a.id {direction}
LIMIT %(limit)s
"""


def like_pattern(text: str) -> str:
    """`text` anywhere, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def app_page(
    conn: AsyncConnection,
    *,
    search: str | None,
    sort: str,
    descending: bool,
    after: tuple[str, str] | None,
    limit: int,
) -> list[AppSummary]:
    params = {
        "pattern": like_pattern(search) if search else None,
        "search": search,
        "after_value": after[0] if after else None,
        "after_id": after[1] if after else None,
        "limit": limit,
    }
    async with conn.cursor(row_factory=class_row(AppSummary)) as cur:
        sql = _app_page_sql(sort, descending, after=after is not None, search=bool(search))
        await cur.execute(sql, params)
        return await cur.fetchall()


# An operator's "app" filter: the app with that id, else those with that name (any case),
# else those whose name contains it. Two probes of apps_name_idx and the primary key.
MATCHING_APPS = """
WITH exact AS (
    SELECT id FROM apps WHERE id = %(text)s OR lower(name) = lower(%(text)s)
)
SELECT id FROM exact
UNION ALL
(SELECT id FROM apps WHERE name ILIKE %(pattern)s AND NOT EXISTS (SELECT 1 FROM exact)
 ORDER BY lower(name), id LIMIT %(limit)s)
"""

NAMES = "SELECT id, name FROM apps WHERE id = ANY(%s)"


async def matching_apps(conn: AsyncConnection, text: str, limit: int = 50) -> list[str]:
    params = {"text": text, "pattern": like_pattern(text), "limit": limit}
    cur = await conn.execute(MATCHING_APPS, params)
    return [row[0] for row in await cur.fetchall()]


async def names(conn: AsyncConnection, app_ids: list[str]) -> dict[str, str]:
    """Display names of these apps (those that still exist)."""
    if not app_ids:
        return {}
    cur = await conn.execute(NAMES, (app_ids,))
    return dict(await cur.fetchall())


WATCH_STATUS_COUNTS = """
SELECT status, count(*) FROM watches WHERE app_id = %s GROUP BY status
"""

DELIVERY_COUNT = "SELECT count(*) FROM deliveries WHERE app_id = %s"

REPLACE_TOKEN = "UPDATE apps SET token_digest = %s, updated_at = now() WHERE id = %s"

# Repositories that only this app watches: they go with it (and their mirrors).
SOLE_REPOSITORIES = """
SELECT w.repository_id, r.host, r.owner, r.name, r.branch, r.url
FROM watches w JOIN repositories r ON r.id = w.repository_id
WHERE w.app_id = %(app_id)s AND NOT EXISTS (
    SELECT 1 FROM watches o WHERE o.repository_id = w.repository_id AND o.app_id <> %(app_id)s)
"""
# A delivery records under a share lock on its watch and then, through the log's foreign key,
# a key-share lock on the app. Deleting takes the same locks in the same order (the watches
# first), or the two could wait on each other (a deadlock, seen in CI).
LOCK_APP_WATCHES = """
SELECT 1 FROM watches WHERE app_id = %s ORDER BY repository_id FOR UPDATE
"""
DELETE_APP = "DELETE FROM apps WHERE id = %s"
DELETE_REPOSITORIES = """
DELETE FROM repositories r WHERE r.id = ANY(%s)
  AND NOT EXISTS (SELECT 1 FROM watches w WHERE w.repository_id = r.id)
RETURNING r.id
"""


class OrphanedRepository(msgspec.Struct, frozen=True):
    id: str
    host: str
    owner: str
    name: str
    branch: str
    url: str


async def watch_status_counts(conn: AsyncConnection, app_id: str) -> dict[str, int]:
    cur = await conn.execute(WATCH_STATUS_COUNTS, (app_id,))
    return {status: count for status, count in await cur.fetchall()}


async def delivery_count(conn: AsyncConnection, app_id: str) -> int:
    cur = await conn.execute(DELIVERY_COUNT, (app_id,))
    row = await cur.fetchone()
    return row[0] if row else 0


async def replace_token_digest(conn: AsyncConnection, app_id: str, digest: bytes) -> bool:
    cur = await conn.execute(REPLACE_TOKEN, (digest, app_id))
    return cur.rowcount > 0


async def delete_app(conn: AsyncConnection, app_id: str) -> list[OrphanedRepository] | None:
    """Delete the app (its watches, delivered state and log go by cascade) and the
    repositories nobody else watches; None when there is no such app. Call in a
    transaction."""
    await conn.execute(LOCK_APP_WATCHES, (app_id,))
    cur = await conn.execute(SOLE_REPOSITORIES, {"app_id": app_id})
    sole = [OrphanedRepository(*row) for row in await cur.fetchall()]
    cur = await conn.execute(DELETE_APP, (app_id,))
    if cur.rowcount == 0:
        return None
    cur = await conn.execute(DELETE_REPOSITORIES, ([r.id for r in sole],))
    gone = {row[0] for row in await cur.fetchall()}
    return [r for r in sole if r.id in gone]
