"""Defer-once (jobs/queue.py): at most one waiting job per lock, however the deferrals
race, inside the caller's transaction or on their own."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from docora.db import open_pool, pipelined_transaction, within_transaction
from docora.jobs.app import build_job_app
from docora.jobs.queue import JobQueue


@contextlib.asynccontextmanager
async def queue_on(settings):
    pool = await open_pool(settings.database_url, max_size=4)
    jobs = build_job_app(settings)
    await jobs.open_async(pool)
    try:
        yield pool, JobQueue(jobs)
    finally:
        await jobs.close_async()
        await pool.close()


def waiting(db, repository_id: str) -> int:
    return db.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE args->>'repository_id' = %s "
        "AND status = 'todo'",
        (repository_id,),
    ).fetchone()[0]


async def test_a_deferral_waiting_for_its_turn_sees_the_job_committed_before_it(settings, db):
    async with (
        queue_on(settings) as (pool, queue),
        pool.connection() as first,
        pool.connection() as second,
    ):
        async with first.transaction():
            assert await queue.sync_now(first, "repo_race")
            # The second deferral waits for the first transaction's turn...
            racing = asyncio.create_task(_defer_in_transaction(second, queue, "repo_race"))
            await asyncio.sleep(0.3)
            assert not racing.done()
        # ...and, once it has the turn, finds the job just committed.
        assert await racing is False
    assert waiting(db, "repo_race") == 1


async def _defer_in_transaction(conn, queue: JobQueue, repository_id: str) -> bool:
    async with conn.transaction():
        return await queue.sync_now(conn, repository_id)


async def test_a_deferral_is_part_of_the_callers_transaction_or_its_own(settings, db):
    async with queue_on(settings) as (pool, queue), pool.connection() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                assert await queue.sync_now(conn, "repo_rolled_back")
                raise RuntimeError("the caller fails after deferring")
        assert waiting(db, "repo_rolled_back") == 0
        # On an idle connection the deferral is a transaction of its own.
        assert await queue.sync_now(conn, "repo_alone")
        assert not await queue.sync_now(conn, "repo_alone")
    assert waiting(db, "repo_alone") == 1


async def test_a_deferral_inside_a_pipelined_transaction_joins_it(settings, db):
    async with queue_on(settings) as (pool, queue), pool.connection() as conn:
        with pytest.raises(RuntimeError):
            async with pipelined_transaction(conn):
                await conn.execute("SELECT 1")  # in flight: the connection reads ACTIVE
                # No savepoint of its own: the caller's transaction is already open.
                assert isinstance(within_transaction(conn), contextlib.nullcontext)
                assert await queue.sync_now(conn, "repo_pipelined")
                raise RuntimeError("the caller fails after deferring")
        assert waiting(db, "repo_pipelined") == 0
        async with pipelined_transaction(conn):
            await conn.execute("SELECT 1")
            assert await queue.sync_now(conn, "repo_pipelined")
            assert not await queue.sync_now(conn, "repo_pipelined")
    assert waiting(db, "repo_pipelined") == 1
