"""The Procrastinate app: tasks, retry policy and periodic schedules, built from Settings.

The API process builds it only to defer jobs (`services` is None); a worker builds it
with its Services, and the task functions close over them. Rescans are not jobs: each
worker's checker (jobs/checks.py) queues a sync only where one is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import procrastinate
from procrastinate import JobContext

from docora.config import Settings
from docora.git import mirrors
from docora.git.mirror import mirror_path
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
from docora.store import trends

log = logging.getLogger(__name__)


def build_job_app(settings: Settings, services: Services | None = None) -> procrastinate.App:
    app = procrastinate.App(connector=PatientConnector())
    if services is not None:
        # Before any task is declared: tasks keep the manager they were declared with.
        presence = WorkerPresence(
            services.pool.conninfo,
            settings.worker_heartbeat_ms / 1000,
            services.lease,
            on_revoked=services.revoked.set,
        )
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
        base = Path(services.settings.repos_base_path)
        path = mirror_path(base, **repository)
        if await mirrors.remove(base, path):
            log.info("removed the mirror of a repository nobody watches: %s", path)

    @app.task(name=ALERT_TASK, pass_context=True, retry=retry)
    async def send_sync_failed(context: JobContext, **payload) -> None:
        assert services is not None
        app_id, repository_id = payload.get("app_id"), payload.get("repository_id")
        bind(job_id=context.job.id, app_id=app_id, repository_id=repository_id)
        await alerts.send_sync_failed(services, context, **payload)

    @app.periodic(cron="17 * * * *", periodic_id="purge")
    @app.task(name="docora.purge_finished_jobs", pass_context=True)
    async def purge_finished_jobs(context: JobContext, timestamp: int) -> None:
        await purge_old_jobs(context.app.job_manager, settings.job_retention_hours)
        assert services is not None
        async with services.pool.connection() as conn:
            removed = await trends.prune(conn, days=settings.metrics_retention_days)
        if removed:
            log.info(
                "pruned %d trend rows older than %d days", removed, settings.metrics_retention_days
            )

    return app


async def purge_old_jobs(job_manager, retention_hours: int) -> None:
    """Remove jobs that ended (succeeded, failed, cancelled or aborted) more than
    `retention_hours` ago, with their events: the queue's tables stay flat while nothing
    changes. A failed job's story stays on its watch (status, last_error)."""
    await job_manager.delete_old_jobs(
        nb_hours=retention_hours, include_failed=True, include_cancelled=True, include_aborted=True
    )
