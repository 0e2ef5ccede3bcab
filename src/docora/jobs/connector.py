"""Procrastinate's psycopg connector, patient about one thing: recording how a job ended.

When Postgres is unreachable at the moment a job finishes, Procrastinate logs the failed
`finish_job` / `retry_job` and moves on, leaving the job `doing` under a worker that is
still alive and heartbeating. Nothing ever picks such a job up again, and its lock blocks
every later job of the same watch. So these two writes wait for the database instead.

Retrying them is safe even when the first attempt was cut off after it committed: the
second attempt then finds the job no longer `doing`, Postgres raises, and the outcome is
already recorded.

And both are fenced: an outcome is written only while the job is still `doing` under the
worker that fetched it (store/workers.py). A worker cut off past its lease has had its jobs
handed on; what it learns of them when the partition heals is no longer its to record.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, LiteralString

import procrastinate
import psycopg
from procrastinate import exceptions, sql

from docora.store import workers

log = logging.getLogger(__name__)

FENCED = {
    sql.queries["finish_job"]: workers.FINISH_IF_OWNER,
    sql.queries["retry_job"]: workers.RETRY_IF_OWNER,
}
FETCH_JOB = sql.queries["fetch_job"]
FIRST_WAIT_S = 0.2
LONGEST_WAIT_S = 5.0


def lost_connection(exc: BaseException) -> bool:
    """True when the database could not be reached (PoolTimeout is an OperationalError)."""
    return isinstance(exc.__cause__, psycopg.OperationalError)


def already_moved_on(exc: BaseException) -> bool:
    """Procrastinate's functions RAISE when the job is no longer in the status they expect."""
    return isinstance(exc.__cause__, psycopg.errors.RaiseException)


class PatientConnector(procrastinate.PsycopgConnector):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Set on shutdown: a stopping worker hands its jobs to the stalled-job check instead.
        self.stopping = False
        # The worker each running job was fetched by.
        self._owners: dict[int, int] = {}

    async def execute_query_one_async(self, query: LiteralString, **arguments: Any):
        row = await super().execute_query_one_async(query, **arguments)
        if query == FETCH_JOB and row is not None and row.get("id") is not None:
            self._owners[row["id"]] = arguments["worker_id"]
        return row

    async def execute_query_async(self, query: LiteralString, **arguments: Any) -> None:
        fenced = FENCED.get(query)
        if fenced is None:
            return await super().execute_query_async(query, **arguments)
        job_id = arguments.get("job_id")
        owner = self._owners.get(job_id) if job_id is not None else None
        if owner is None:
            return await self._patiently(query, arguments)
        rows = await self._patiently(fenced, {**arguments, "owner": owner}, rows=True)
        if rows:
            del self._owners[job_id]
        else:  # kept: any later outcome this worker tries for the job is dropped too
            log.warning(
                "job %s is no longer this worker's (handed on while it was cut off, or "
                "recorded before the connection broke); its outcome here is dropped",
                job_id,
            )
        return None

    async def _patiently(self, query: LiteralString, arguments: dict, rows: bool = False):
        """Run an outcome write, waiting for the database while it is unreachable."""
        job_id = arguments.get("job_id")
        wait = FIRST_WAIT_S
        interrupted = False
        while True:
            try:
                if rows:
                    return await super().execute_query_all_async(query, **arguments)
                return await super().execute_query_async(query, **arguments)
            except exceptions.ConnectorException as exc:
                if interrupted and already_moved_on(exc):
                    log.info("job %s: outcome recorded before the connection broke", job_id)
                    return [None] if rows else None
                if not lost_connection(exc) or self.stopping:
                    raise
            interrupted = True
            log.warning("database unreachable; will record job %s again", job_id)
            await asyncio.sleep(wait)
            wait = min(LONGEST_WAIT_S, wait * 2)
