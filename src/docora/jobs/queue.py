"""Queueing work, inside the caller's transaction.

Jobs carry a Procrastinate `lock` (one running sync per repository, one running delivery
per watch across all workers) but no `queueing_lock`: Procrastinate retries a failed job
in place, and a retry that meets a waiting job with the same queueing lock violates its
unique index and leaves the job stuck in `doing` (procrastinate issues #1446, #1543).
"At most one waiting" is kept here instead: deferrals of the same lock are serialized by
a transaction-scoped advisory lock and skipped while a job with that lock is waiting
(a retry scheduled later counts as waiting, so backoff is respected).
"""

from __future__ import annotations

import procrastinate
from psycopg import AsyncConnection

from docora.db import within_transaction

SYNC_TASK = "docora.sync_repository"
DELIVER_TASK = "docora.deliver_watch"
ALERT_TASK = "docora.send_sync_failed"
OPERATION_TASK = "docora.run_operation"
FORGET_MIRROR_TASK = "docora.forget_mirror"

# Waits for the lock's turn, then says whether a job with it is waiting (migration 0010).
_WAITING = "SELECT docora_job_waiting(%s)"
# Procrastinate's unique index on (lock) WHERE status = 'doing' answers this.
_RUNNING = "SELECT EXISTS (SELECT 1 FROM procrastinate_jobs WHERE lock = %s AND status = 'doing')"


SYNC_LOCK_PREFIX = "repo:"


def sync_lock(repository_id: str) -> str:
    return SYNC_LOCK_PREFIX + repository_id


def deliver_lock(app_id: str, repository_id: str) -> str:
    return f"watch:{app_id}:{repository_id}"


async def sync_running(conn: AsyncConnection, repository_id: str) -> bool:
    """Whether a worker is running the repository's sync job."""
    cur = await conn.execute(_RUNNING, (sync_lock(repository_id),))
    row = await cur.fetchone()
    return bool(row and row[0])


class JobQueue:
    def __init__(self, app: procrastinate.App) -> None:
        self._app = app

    async def sync_now(self, conn: AsyncConnection, repository_id: str) -> bool:
        """Queue a sync; False when one is already waiting (it will see the change)."""
        return await self._defer_once(
            conn, SYNC_TASK, sync_lock(repository_id), repository_id=repository_id
        )

    async def deliver_now(self, conn: AsyncConnection, app_id: str, repository_id: str) -> bool:
        return await self._defer_once(
            conn,
            DELIVER_TASK,
            deliver_lock(app_id, repository_id),
            app_id=app_id,
            repository_id=repository_id,
        )

    async def run_operation(self, conn: AsyncConnection, operation_id: str) -> bool:
        return await self._defer_once(
            conn, OPERATION_TASK, f"operation:{operation_id}", operation_id=operation_id
        )

    async def forget_mirror(self, conn: AsyncConnection, repository) -> None:
        """Remove a deleted repository's mirror (its url, host, owner, name and branch
        locate it; no secret is in them)."""
        await self._app.configure_task(FORGET_MIRROR_TASK, connection=conn).defer_async(
            url=repository.url,
            host=repository.host,
            owner=repository.owner,
            name=repository.name,
            branch=repository.branch,
        )

    async def alert(self, conn: AsyncConnection, **payload) -> None:
        await self._app.configure_task(ALERT_TASK, connection=conn).defer_async(**payload)

    async def _defer_once(self, conn: AsyncConnection, task: str, lock: str, **args) -> bool:
        async with within_transaction(conn):
            cur = await conn.execute(_WAITING, (lock,))
            row = await cur.fetchone()
            if row and row[0]:
                return False
            await self._app.configure_task(task, connection=conn, lock=lock).defer_async(**args)
        return True
