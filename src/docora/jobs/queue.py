"""Queueing work, inside the caller's transaction when there is one."""

from __future__ import annotations

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from psycopg import AsyncConnection

SYNC_TASK = "docora.sync_repository"
DELIVER_TASK = "docora.deliver_watch"
ALERT_TASK = "docora.send_sync_failed"


def sync_locks(repository_id: str) -> dict[str, str]:
    # `lock`: one sync of a repository at a time across all workers;
    # `queueing_lock`: at most one waiting, since a waiting sync will see all changes anyway.
    return {"lock": f"repo:{repository_id}", "queueing_lock": f"sync:{repository_id}"}


def deliver_locks(app_id: str, repository_id: str) -> dict[str, str]:
    return {
        "lock": f"watch:{app_id}:{repository_id}",
        "queueing_lock": f"deliver:{app_id}:{repository_id}",
    }


class JobQueue:
    def __init__(self, app: procrastinate.App) -> None:
        self._app = app

    async def sync_now(self, conn: AsyncConnection, repository_id: str) -> bool:
        """Queue a sync; False when one is already waiting (it will see the change)."""
        return await self._defer(
            conn, SYNC_TASK, sync_locks(repository_id), repository_id=repository_id
        )

    async def deliver_now(self, conn: AsyncConnection, app_id: str, repository_id: str) -> bool:
        return await self._defer(
            conn,
            DELIVER_TASK,
            deliver_locks(app_id, repository_id),
            app_id=app_id,
            repository_id=repository_id,
        )

    async def alert(self, conn: AsyncConnection, **payload) -> None:
        await self._defer(conn, ALERT_TASK, {}, **payload)

    async def _defer(self, conn: AsyncConnection, task: str, locks: dict[str, str], **args) -> bool:
        deferrer = self._app.configure_task(task, connection=conn, **locks)
        try:
            # A savepoint: the unique violation behind AlreadyEnqueued must not abort
            # the caller's transaction.
            async with conn.transaction():
                await deferrer.defer_async(**args)
        except AlreadyEnqueued:
            return False
        return True
