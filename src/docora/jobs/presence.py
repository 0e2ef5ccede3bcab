"""Worker presence: what proves a worker gone, so its jobs resume in seconds, not minutes.

Each registered Procrastinate worker holds one Postgres session of its own with an
advisory lock keyed by its id (store/workers.py). Every worker runs the reaper on each
heartbeat: a worker whose lock is free and whose heartbeat is two beats old is gone (its
process died and Postgres closed its session), so its `doing` jobs are retried at once
and its row forgotten. Missing heartbeats alone (a busy or paused worker keeps its session)
count only after STALLED_AFTER, the old rule, which covers hosts that vanish without
closing their sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging

import psycopg
from procrastinate import exceptions
from procrastinate.manager import JobManager
from psycopg_pool import AsyncConnectionPool

from docora.store import workers

log = logging.getLogger(__name__)


class WorkerPresence:
    """The sessions that prove this process's workers alive."""

    def __init__(self, conninfo: str, check_every_s: float) -> None:
        self._conninfo = conninfo
        self._check_every_s = check_every_s
        self._holders: dict[int, asyncio.Task[None]] = {}

    async def claim(self, worker_id: int) -> None:
        conn = await self._connect(worker_id)
        self._holders[worker_id] = asyncio.create_task(
            self._hold(worker_id, conn), name=f"presence of worker {worker_id}"
        )

    async def release(self, worker_id: int) -> None:
        holder = self._holders.pop(worker_id, None)
        if holder is not None:
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder

    async def _connect(self, worker_id: int) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        await workers.take_presence(conn, worker_id)
        return conn

    async def _hold(self, worker_id: int, conn: psycopg.AsyncConnection | None) -> None:
        """Keep the session; take it again if it was cut (a DBA, a proxy) while this
        process lives, so that it is not mistaken for a dead one."""
        try:
            while True:
                await asyncio.sleep(self._check_every_s)
                try:
                    if conn is None or conn.closed:
                        conn = await self._connect(worker_id)
                    else:
                        await conn.execute("SELECT 1")
                except psycopg.Error as exc:
                    log.warning("worker %s lost its presence session (%s)", worker_id, exc)
                    if conn is not None:
                        await conn.close()
                    conn = None
        finally:
            if conn is not None:
                await conn.close()  # the lock goes with the session


class PresentJobManager(JobManager):
    """Procrastinate's job manager, claiming presence for each worker it registers."""

    def __init__(self, connector, presence: WorkerPresence) -> None:
        super().__init__(connector)
        self.presence = presence

    async def register_worker(self) -> int:
        worker_id = await super().register_worker()
        await self.presence.claim(worker_id)
        return worker_id

    async def unregister_worker(self, worker_id: int) -> None:
        try:
            await super().unregister_worker(worker_id)
        finally:
            await self.presence.release(worker_id)


async def reap_gone_workers(
    manager: JobManager,
    pool: AsyncConnectionPool,
    *,
    gone_after_s: float,
    stalled_after_s: float,
) -> int:
    """Retry the jobs of workers proven gone, then forget those workers; return how many
    jobs were retried. Several reapers may race: a job already retried is skipped."""
    async with pool.connection() as conn:
        gone = await workers.gone_workers(
            conn, gone_after_s=gone_after_s, stalled_after_s=stalled_after_s
        )
        orphaned = await workers.orphaned_jobs(conn, gone)
    retried = 0
    now = datetime.datetime.now(datetime.UTC)
    for job_id in orphaned:
        try:
            await manager.retry_job_by_id_async(job_id, retry_at=now)
        except exceptions.ConnectorException:
            continue  # another reaper (or the job's end) got there first
        log.warning("retrying job %s: its worker is gone", job_id)
        retried += 1
    if gone:
        async with pool.connection() as conn:
            await workers.forget_workers(conn, gone)
        log.warning("workers %s are gone (no session, no heartbeat)", gone)
    return retried
