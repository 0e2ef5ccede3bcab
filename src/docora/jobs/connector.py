"""Procrastinate's psycopg connector, patient about one thing: recording how a job ended.

When Postgres is unreachable at the moment a job finishes, Procrastinate logs the failed
`finish_job` / `retry_job` and moves on, leaving the job `doing` under a worker that is
still alive and heartbeating. Nothing ever picks such a job up again, and its lock blocks
every later job of the same watch. So these two writes wait for the database instead.

Retrying them is safe even when the first attempt was cut off after it committed: the
second attempt then finds the job no longer `doing`, Postgres raises, and the outcome is
already recorded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, LiteralString

import procrastinate
import psycopg
from procrastinate import exceptions, sql

log = logging.getLogger(__name__)

OUTCOME_QUERIES = frozenset({sql.queries["finish_job"], sql.queries["retry_job"]})
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

    async def execute_query_async(self, query: LiteralString, **arguments: Any) -> None:
        if query not in OUTCOME_QUERIES:
            return await super().execute_query_async(query, **arguments)
        job_id = arguments.get("job_id")
        wait = FIRST_WAIT_S
        interrupted = False
        while True:
            try:
                return await super().execute_query_async(query, **arguments)
            except exceptions.ConnectorException as exc:
                if interrupted and already_moved_on(exc):
                    log.info("job %s: outcome recorded before the connection broke", job_id)
                    return None
                if not lost_connection(exc) or self.stopping:
                    raise
            interrupted = True
            log.warning("database unreachable; will record job %s again", job_id)
            await asyncio.sleep(wait)
            wait = min(LONGEST_WAIT_S, wait * 2)
