"""The Procrastinate app: task registration and periodic schedules, built from Settings."""

from __future__ import annotations

import procrastinate
from procrastinate import JobContext

from docora.config import Settings

PURGE_FINISHED_AFTER_HOURS = 72
SYNC_TASK = "docora.sync_repository"


def interval_cron(interval_ms: int) -> str:
    """A cron expression that fires every `interval_ms` (rounded to whole seconds).

    Procrastinate accepts a sixth column for seconds; intervals that do not divide a
    minute or an hour evenly fall back to the nearest divisor so ticks stay regular.
    """
    seconds = max(1, round(interval_ms / 1000))
    if seconds < 60:
        step = max(d for d in range(1, 60) if 60 % d == 0 and d <= seconds)
        return f"*/{step} * * * * *"
    minutes = seconds // 60
    if minutes < 60:
        step = max(d for d in range(1, 61) if 60 % d == 0 and d <= minutes)
        return f"*/{step} * * * *"
    hours = min(24, minutes // 60)
    step = max(d for d in range(1, 25) if 24 % d == 0 and d <= hours)
    return f"0 */{step} * * *"


async def purge_finished_jobs(context: JobContext, timestamp: int) -> None:
    """Keep procrastinate_jobs small: finished jobs older than three days go."""
    await context.app.job_manager.delete_old_jobs(nb_hours=PURGE_FINISHED_AFTER_HOURS)


def build_job_app(settings: Settings) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector())
    purge = app.task(
        name="docora.purge_finished_jobs", pass_context=True, queueing_lock="purge_finished_jobs"
    )(purge_finished_jobs)
    app.periodic(cron="17 * * * *", periodic_id="purge")(purge)
    return app
