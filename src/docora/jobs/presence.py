"""Worker presence: what proves a worker gone, so its jobs resume in seconds, not minutes.

Each registered Procrastinate worker holds one Postgres session of its own with an
advisory lock keyed by its id (store/workers.py), and beats its heartbeat on it; each
answered beat renews the process's lease (docora/lease.py). Every worker runs the reaper
on each heartbeat: a worker whose lock is free and whose heartbeat is two beats old is
gone (its process died and Postgres closed its session); one silent for its lease and half
a beat is gone whatever its session (cut off, or paused). Its `doing` jobs are retried at
once and its row forgotten. A worker that finds its own row forgotten has lost its jobs
for good: it says so (`on_revoked`) and the runtime starts it afresh under a new id.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable

import psycopg
from procrastinate import exceptions
from procrastinate.manager import JobManager
from psycopg_pool import AsyncConnectionPool

from docora.db import brief_tcp, keep_alive_briefly
from docora.lease import Lease
from docora.store import workers

log = logging.getLogger(__name__)


class WorkerPresence:
    """The sessions that prove this process's workers alive, and renew its lease."""

    def __init__(
        self,
        conninfo: str,
        check_every_s: float,
        lease: Lease,
        on_revoked: Callable[[], None] = lambda: None,
    ) -> None:
        self._conninfo = conninfo
        self._check_every_s = check_every_s
        self._holders: dict[int, asyncio.Task[None]] = {}
        self.lease = lease
        self._on_revoked = on_revoked

    async def claim(self, worker_id: int) -> None:
        sent_at = self.lease.now()
        conn = await self._connect(worker_id)
        self.lease.restart(sent_at)  # a new id: the jobs it fetches are its own
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
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=max(1, round(self._check_every_s)),
            **brief_tcp(self._check_every_s),
        )
        try:
            await keep_alive_briefly(conn, self._check_every_s)
            await workers.take_presence(conn, worker_id)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _hold(self, worker_id: int, conn: psycopg.AsyncConnection | None) -> None:
        """Beat on the session; take it again if it was cut (a DBA, a proxy, a partition)
        while this process lives. Each step is bounded by a beat: a partitioned socket
        answers nothing, and the lease must not wait for TCP to give up."""
        try:
            while True:
                await asyncio.sleep(self._check_every_s)
                try:
                    if conn is None or conn.closed:
                        conn = await asyncio.wait_for(
                            self._connect(worker_id), 2 * self._check_every_s
                        )
                    sent_at = self.lease.now()
                    registered = await asyncio.wait_for(
                        workers.beat(conn, worker_id), self._check_every_s
                    )
                except (psycopg.Error, TimeoutError) as exc:
                    log.warning(
                        "worker %s lost its presence session (%s)",
                        worker_id,
                        exc or type(exc).__name__,
                    )
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(conn.close(), 1)
                    conn = None
                    continue
                if not registered:
                    self.lease.revoke()
                    log.warning(
                        "worker %s was declared gone (silent past its lease); its jobs "
                        "run elsewhere now, and it starts afresh",
                        worker_id,
                    )
                    self._on_revoked()
                    return
                self.lease.renewed(sent_at)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 1)  # the lock goes with the session


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
