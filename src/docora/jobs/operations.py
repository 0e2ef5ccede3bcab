"""The bulk operation task: works through an operation's watches one at a time.

Each item's action, its outcome and the operation's counters commit in one transaction,
so a restart resumes exactly where it stopped and the progress shown is exact. A cancel
is seen before the next item."""

from __future__ import annotations

import logging

from docora.jobs.queue import JobQueue
from docora.jobs.services import Services
from docora.store import operations, watches

log = logging.getLogger(__name__)

APPLY = {"retry": watches.retry_watch, "resync": watches.resync_watch}


async def run_operation(services: Services, queue: JobQueue, operation_id: str) -> None:
    async with services.pool.connection() as conn:
        operation = await operations.get_operation(conn, operation_id)
    if operation is None or operation.status != "running":
        return
    apply = APPLY[operation.action]
    while await _one_item(services, queue, operation_id, apply):
        pass


async def _one_item(services: Services, queue: JobQueue, operation_id: str, apply) -> bool:
    """Act on the next item; False when the operation has ended."""
    async with services.pool.connection() as conn, conn.transaction():
        if await operations.cancel_requested(conn, operation_id):
            await operations.finish(conn, operation_id, "cancelled")
            return False
        item = await operations.next_item(conn, operation_id)
        if item is None:
            await operations.finish(conn, operation_id, "done")
            return False
        app_id, repository_id = item
        found = await apply(conn, app_id, repository_id)
        if found:
            await queue.sync_now(conn, repository_id)
        # A watch deleted since the operation started counts as failed.
        outcome = "succeeded" if found else "failed"
        await operations.record_item(conn, operation_id, app_id, repository_id, outcome)
    return True
