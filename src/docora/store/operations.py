"""Bulk operations over watches and their items: the plan, the progress, the outcome."""

from __future__ import annotations

from datetime import datetime

import msgspec
from psycopg import AsyncConnection
from psycopg.rows import class_row


class Operation(msgspec.Struct, frozen=True):
    id: str
    action: str
    app_id: str | None
    status_filter: str | None
    status: str
    total: int
    completed: int
    succeeded: int
    failed: int
    cancel_requested: bool
    error: str | None
    created_at: datetime
    finished_at: datetime | None


COLUMNS = ", ".join(Operation.__struct_fields__)

INSERT_OPERATION = """
INSERT INTO operations (id, action, app_id, status_filter, total)
VALUES (%(id)s, %(action)s, %(app_id)s, %(status_filter)s, 0)
"""

# The watches an operation covers are fixed when it starts (later watches are not in it).
INSERT_ITEMS = """
INSERT INTO operation_items (operation_id, app_id, repository_id)
SELECT %(id)s, w.app_id, w.repository_id FROM watches w
WHERE w.status = ANY(%(statuses)s)
  AND (%(app_id)s::text IS NULL OR w.app_id = %(app_id)s)
"""

SET_TOTAL = f"UPDATE operations SET total = %s WHERE id = %s RETURNING {COLUMNS}"

SELECT_OPERATION = f"SELECT {COLUMNS} FROM operations WHERE id = %s"

SELECT_RECENT = f"""
SELECT {COLUMNS} FROM operations
WHERE (%(app_id)s::text IS NULL OR app_id = %(app_id)s)
ORDER BY created_at DESC LIMIT %(limit)s
"""

REQUEST_CANCEL = """
UPDATE operations SET cancel_requested = true WHERE id = %s AND status = 'running'
"""

# The next item to act on; locked so that two runs of one operation never share one.
NEXT_ITEM = """
SELECT app_id, repository_id FROM operation_items
WHERE operation_id = %s AND outcome IS NULL
ORDER BY app_id, repository_id LIMIT 1 FOR UPDATE SKIP LOCKED
"""

RECORD_ITEM = """
WITH item AS (
    UPDATE operation_items SET outcome = %(outcome)s
    WHERE operation_id = %(id)s AND app_id = %(app_id)s AND repository_id = %(repository_id)s
      AND outcome IS NULL
    RETURNING outcome
)
UPDATE operations SET completed = completed + (SELECT count(*) FROM item),
    succeeded = succeeded + (SELECT count(*) FROM item WHERE outcome = 'succeeded'),
    failed = failed + (SELECT count(*) FROM item WHERE outcome = 'failed')
WHERE id = %(id)s
"""

FINISH = """
UPDATE operations SET status = %(status)s, error = %(error)s, finished_at = now()
WHERE id = %(id)s AND status = 'running'
"""

CANCEL_REQUESTED = "SELECT cancel_requested FROM operations WHERE id = %s"


async def create_operation(
    conn: AsyncConnection,
    *,
    id: str,
    action: str,
    app_id: str | None,
    status_filter: str | None,
    statuses: list[str],
) -> Operation:
    """The operation and its items, in the caller's transaction."""
    params = {
        "id": id,
        "action": action,
        "app_id": app_id,
        "status_filter": status_filter,
        "statuses": statuses,
    }
    await conn.execute(INSERT_OPERATION, params)
    cur = await conn.execute(INSERT_ITEMS, params)
    async with conn.cursor(row_factory=class_row(Operation)) as typed:
        await typed.execute(SET_TOTAL, (cur.rowcount, id))
        row = await typed.fetchone()
    assert row is not None
    return row


async def get_operation(conn: AsyncConnection, operation_id: str) -> Operation | None:
    async with conn.cursor(row_factory=class_row(Operation)) as cur:
        await cur.execute(SELECT_OPERATION, (operation_id,))
        return await cur.fetchone()


async def recent_operations(
    conn: AsyncConnection, *, app_id: str | None, limit: int
) -> list[Operation]:
    async with conn.cursor(row_factory=class_row(Operation)) as cur:
        await cur.execute(SELECT_RECENT, {"app_id": app_id, "limit": limit})
        return await cur.fetchall()


async def request_cancel(conn: AsyncConnection, operation_id: str) -> bool:
    cur = await conn.execute(REQUEST_CANCEL, (operation_id,))
    return cur.rowcount > 0


async def cancel_requested(conn: AsyncConnection, operation_id: str) -> bool:
    cur = await conn.execute(CANCEL_REQUESTED, (operation_id,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def next_item(conn: AsyncConnection, operation_id: str) -> tuple[str, str] | None:
    """Call inside a transaction: the item stays locked until it is recorded."""
    cur = await conn.execute(NEXT_ITEM, (operation_id,))
    row = await cur.fetchone()
    return (row[0], row[1]) if row else None


async def record_item(
    conn: AsyncConnection, operation_id: str, app_id: str, repository_id: str, outcome: str
) -> None:
    await conn.execute(
        RECORD_ITEM,
        {"id": operation_id, "app_id": app_id, "repository_id": repository_id, "outcome": outcome},
    )


async def finish(
    conn: AsyncConnection, operation_id: str, status: str, error: str | None = None
) -> None:
    await conn.execute(FINISH, {"id": operation_id, "status": status, "error": error})
