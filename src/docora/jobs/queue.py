"""Queueing syncs from the API, inside the caller's transaction."""

from __future__ import annotations

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from psycopg import AsyncConnection

from docora.jobs.app import SYNC_TASK


def sync_locks(repository_id: str) -> dict[str, str]:
    # `lock`: one sync of a repository at a time across all workers;
    # `queueing_lock`: at most one waiting, since a waiting sync will see all changes anyway.
    return {"lock": f"repo:{repository_id}", "queueing_lock": f"sync:{repository_id}"}


class JobQueue:
    def __init__(self, app: procrastinate.App) -> None:
        self._app = app

    async def sync_now(self, conn: AsyncConnection, repository_id: str) -> bool:
        """Queue a sync in the caller's transaction; False when one is already waiting."""
        deferrer = self._app.configure_task(SYNC_TASK, connection=conn, **sync_locks(repository_id))
        try:
            # A savepoint: the unique violation behind AlreadyEnqueued must not abort
            # the caller's transaction.
            async with conn.transaction():
                await deferrer.defer_async(repository_id=repository_id)
        except AlreadyEnqueued:
            return False
        return True
