"""The bulk operation task: works through an operation's watches one at a time.

Each item's action, its outcome and the operation's counters commit in one transaction,
so a restart resumes exactly where it stopped and the progress shown is exact. A cancel
is seen before the next item."""

from __future__ import annotations

import logging

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from docora.jobs.queue import JobQueue
from docora.store import operations, watches

log = logging.getLogger(__name__)

# What an operator can do to one watch: retry (clear the error and attempts, close the
# circuit) or resync (forget what the app holds). Either way a sync is queued.
WATCH_ACTIONS = {"retry": watches.retry_watch, "resync": watches.resync_watch}


async def act_on_watch(
    conn: AsyncConnection, queue: JobQueue, action: str, app_id: str, repository_id: str
) -> bool:
    """One watch's retry or resync and its sync, in the caller's transaction; False when
    there is no such watch. The operator API, the console and bulk operations all act so."""
    if not await WATCH_ACTIONS[action](conn, app_id, repository_id):
        return False
    await queue.sync_now(conn, repository_id)
    return True


async def run_operation(pool: AsyncConnectionPool, queue: JobQueue, operation_id: str) -> None:
    async with pool.connection() as conn:
        operation = await operations.get_operation(conn, operation_id)
    if operation is None or operation.status != "running":
        return
    while await _one_item(pool, queue, operation_id, operation.action):
        pass


async def _one_item(
    pool: AsyncConnectionPool, queue: JobQueue, operation_id: str, action: str
) -> bool:
    """Act on the next item; False when the operation has ended."""
    async with pool.connection() as conn, conn.transaction():
        if await operations.cancel_requested(conn, operation_id):
            await operations.finish(conn, operation_id, "cancelled")
            return False
        item = await operations.next_item(conn, operation_id)
        if item is None:
            await operations.finish(conn, operation_id, "done")
            return False
        app_id, repository_id = item
        found = await act_on_watch(conn, queue, action, app_id, repository_id)
        # A watch deleted since the operation started counts as failed.
        outcome = "succeeded" if found else "failed"
        await operations.record_item(conn, operation_id, app_id, repository_id, outcome)
    return True
