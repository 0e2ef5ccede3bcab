"""The Procrastinate app: tasks, retry policy and periodic schedules, built from Settings.

The API process builds it only to defer jobs (`services` is None); a worker builds it
with its Services, and the task functions close over them.
"""

from __future__ import annotations

import logging

import procrastinate
from procrastinate import JobContext

from docora.config import Settings
from docora.git.mirror import mirror_path, remove_mirror
from docora.jobs import alerts, delivery, operations, sync
from docora.jobs.connector import PatientConnector
from docora.jobs.presence import PresentJobManager, WorkerPresence
from docora.jobs.queue import (
    ALERT_TASK,
    DELIVER_TASK,
    FORGET_MIRROR_TASK,
    OPERATION_TASK,
    SYNC_TASK,
    JobQueue,
)
from docora.jobs.retry import DoublingRetry
from docora.jobs.services import Services
from docora.logs import bind
from docora.store import watches

log = logging.getLogger(__name__)

PURGE_FINISHED_AFTER_HOURS = 72
SCHEDULE_BATCH = 1000


def interval_cron(interval_ms: int) -> str:
    """A cron expression that fires every `interval_ms` (rounded to whole seconds).

    Procrastinate accepts a sixth column for seconds; intervals that do not divide a
    minute or an hour evenly fall back to the nearest divisor so ticks stay regular.
    """
    seconds = max(1, round(interval_ms / 1000))
    if seconds < 60:
        step = max(d for d in range(1, 60) if 60 % d == 0 and d <= seconds)
        return f"* * * * * */{step}"
    minutes = seconds // 60
    if minutes < 60:
        step = max(d for d in range(1, 61) if 60 % d == 0 and d <= minutes)
        return f"*/{step} * * * *"
    hours = min(24, minutes // 60)
    step = max(d for d in range(1, 25) if 24 % d == 0 and d <= hours)
    return f"0 */{step} * * *"


def build_job_app(settings: Settings, services: Services | None = None) -> procrastinate.App:
    app = procrastinate.App(connector=PatientConnector())
    if services is not None:
        # Before any task is declared: tasks keep the manager they were declared with.
        presence = WorkerPresence(services.pool.conninfo, settings.worker_heartbeat_ms / 1000)
        app.job_manager = PresentJobManager(app.connector, presence)
    queue = JobQueue(app)
    retry = DoublingRetry(
        base_delay_ms=settings.retry_base_delay_ms, max_attempts=settings.max_retry_attempts
    )

    @app.task(name=SYNC_TASK, pass_context=True, retry=retry)
    async def sync_repository(context: JobContext, repository_id: str) -> None:
        assert services is not None
        bind(job_id=context.job.id, repository_id=repository_id)
        await sync.sync_repository(services, queue, context, repository_id)

    @app.task(name=DELIVER_TASK, pass_context=True, retry=retry)
    async def deliver_watch(context: JobContext, app_id: str, repository_id: str) -> None:
        assert services is not None
        bind(job_id=context.job.id, app_id=app_id, repository_id=repository_id)
        await delivery.deliver_watch(services, context, app_id, repository_id)

    @app.task(name=OPERATION_TASK, pass_context=True, retry=retry)
    async def run_operation(context: JobContext, operation_id: str) -> None:
        assert services is not None
        bind(job_id=context.job.id)
        await operations.run_operation(services.pool, queue, operation_id)

    @app.task(name=FORGET_MIRROR_TASK, pass_context=True)
    async def forget_mirror(context: JobContext, **repository: str) -> None:
        assert services is not None
        path = mirror_path(services.settings.repos_base_path, **repository)
        if remove_mirror(services.settings.repos_base_path, path):
            log.info("removed the mirror of a repository nobody watches: %s", path)

    @app.task(name=ALERT_TASK, pass_context=True, retry=retry)
    async def send_sync_failed(context: JobContext, **payload) -> None:
        assert services is not None
        app_id, repository_id = payload.get("app_id"), payload.get("repository_id")
        bind(job_id=context.job.id, app_id=app_id, repository_id=repository_id)
        await alerts.send_sync_failed(services, context, **payload)

    @app.periodic(cron=interval_cron(settings.scan_interval_ms), periodic_id="tick")
    @app.task(name="docora.schedule", pass_context=True)
    async def schedule(context: JobContext, timestamp: int) -> None:
        assert services is not None
        await schedule_due_syncs(services, queue, context)

    @app.periodic(cron="17 * * * *", periodic_id="purge")
    @app.task(name="docora.purge_finished_jobs", pass_context=True)
    async def purge_finished_jobs(context: JobContext, timestamp: int) -> None:
        await context.app.job_manager.delete_old_jobs(nb_hours=PURGE_FINISHED_AFTER_HOURS)

    return app


async def schedule_due_syncs(services: Services, queue: JobQueue, context: JobContext) -> int:
    """One tick: queue a sync for every repository with a due watch. (Jobs of workers that
    died are retried by every worker's reaper, jobs/presence.py.)"""
    async with services.pool.connection() as conn:
        due = await watches.claim_due_repositories(
            conn, rescan_ms=services.settings.rescan_interval_ms, limit=SCHEDULE_BATCH
        )
        for repository_id in due:
            await queue.sync_now(conn, repository_id)
    return len(due)
