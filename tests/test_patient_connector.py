"""PatientConnector against the real test database, with connection failures injected
between it and Procrastinate's own connector."""

from __future__ import annotations

import contextlib

import procrastinate
import psycopg
import pytest
from procrastinate import exceptions
from procrastinate.jobs import Status

from docora.db import open_pool
from docora.jobs import connector as patient_module
from docora.jobs.connector import PatientConnector

# Procrastinate's outcome queries and the fenced forms PatientConnector runs in their place.
OUTCOME_QUERIES = frozenset({*patient_module.FENCED, *patient_module.FENCED.values()})


class Injected(procrastinate.PsycopgConnector):
    """Fails outcome queries as scripted: "down" before running them (Postgres was
    unreachable), "lost" after running them (the reply never arrived), "bug" before."""

    script: list[str]

    async def execute_query_async(self, query, **arguments):
        return await self._scripted(super().execute_query_async, query, arguments)

    async def execute_query_all_async(self, query, **arguments):
        # The fenced outcome queries read their rows (whether the job was still owned).
        return await self._scripted(super().execute_query_all_async, query, arguments)

    async def _scripted(self, run, query, arguments):
        if query not in OUTCOME_QUERIES or not self.script:
            return await run(query, **arguments)
        step = self.script.pop(0)
        if step == "lost":
            await run(query, **arguments)
        if step == "bug":
            raise exceptions.ConnectorException from psycopg.errors.UndefinedTable("boom")
        raise exceptions.ConnectorException from psycopg.OperationalError("server closed")


class Scripted(PatientConnector, Injected):
    """PatientConnector's super() is now Injected, then Procrastinate's connector."""


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(patient_module, "FIRST_WAIT_S", 0.001)


@contextlib.asynccontextmanager
async def running_job(url: str, script: list[str]):
    """A job in `doing`, and the app whose connector fails its outcome query as scripted."""
    pool = await open_pool(url)
    connector = Scripted()
    connector.script = script
    app = procrastinate.App(connector=connector)
    await app.open_async(pool)
    try:
        await app.configure_task("tests.noop").defer_async()
        worker_id = await app.job_manager.register_worker()
        job = await app.job_manager.fetch_job(queues=None, worker_id=worker_id)
        assert job is not None and job.status == "doing"
        yield app, connector, job
    finally:
        await app.close_async()
        await pool.close()


async def finish(app, job) -> Status:
    await app.job_manager.finish_job(job, status=Status.SUCCEEDED, delete_job=False)
    return await app.job_manager.get_job_status_async(job.id)


async def test_outcome_waits_for_the_database_then_is_recorded(database_url):
    async with running_job(database_url, ["down", "down", "down"]) as (app, _, job):
        assert await finish(app, job) == Status.SUCCEEDED


async def test_outcome_recorded_before_the_reply_was_lost_is_not_an_error(database_url):
    async with running_job(database_url, ["lost"]) as (app, _, job):
        assert await finish(app, job) == Status.SUCCEEDED


async def test_retry_decision_survives_an_outage_too(database_url):
    async with running_job(database_url, ["down", "lost"]) as (app, _, job):
        await app.job_manager.retry_job(job)
        assert await app.job_manager.get_job_status_async(job.id) == Status.TODO


async def test_other_errors_are_not_retried(database_url):
    async with running_job(database_url, ["bug"]) as (app, _, job):
        with pytest.raises(exceptions.ConnectorException):
            await finish(app, job)
        assert await app.job_manager.get_job_status_async(job.id) == Status.DOING


async def test_a_stopping_worker_does_not_wait(database_url):
    async with running_job(database_url, ["down"]) as (app, connector, job):
        connector.stopping = True
        with pytest.raises(exceptions.ConnectorException):
            await finish(app, job)
        # Left `doing` for the stalled-job check once this worker is gone.
        assert await app.job_manager.get_job_status_async(job.id) == Status.DOING


@contextlib.asynccontextmanager
async def handed_on(database_url: str, job):
    """Another worker's app, after its reaper (another process: it never saw the job
    fetched) handed the job on."""
    pool = await open_pool(database_url)
    other = procrastinate.App(connector=PatientConnector())
    await other.open_async(pool)
    try:
        await other.job_manager.retry_job_by_id_async(job.id, retry_at=None)
        yield other
    finally:
        await other.close_async()


async def test_an_outcome_is_dropped_once_the_job_was_handed_to_another_worker(database_url):
    """A worker cut off past its lease: the reaper handed its job on and another worker
    runs it. When the first learns how its own run ended, that is no longer its to write."""
    async with (
        running_job(database_url, []) as (app, _, job),
        handed_on(database_url, job) as other,
    ):
        other_worker = await other.job_manager.register_worker()
        again = await other.job_manager.fetch_job(queues=None, worker_id=other_worker)
        assert again is not None and again.id == job.id
        # The cut-off worker's outcome, succeeded or retried, changes nothing...
        assert await finish(app, job) == Status.DOING
        await app.job_manager.retry_job(job)
        assert await app.job_manager.get_job_status_async(job.id) == Status.DOING
        # ...and the worker that holds it now records its own.
        assert await finish(other, again) == Status.SUCCEEDED


async def test_a_job_handed_on_but_not_taken_yet_keeps_its_retry(database_url):
    async with running_job(database_url, []) as (app, _, job), handed_on(database_url, job):
        # Procrastinate's own finish_job would mark the waiting retry succeeded.
        assert await finish(app, job) == Status.TODO
