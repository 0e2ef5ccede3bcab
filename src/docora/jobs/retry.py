"""Retry policy: RETRY_BASE_DELAY_MS x 2^(attempt-1), MAX_RETRY_ATTEMPTS attempts in all.

Procrastinate's job.attempts is the single attempt counter; watch.retry_count mirrors it.
"""

from __future__ import annotations

import asyncio

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.jobs import Job


class DoublingRetry(BaseRetryStrategy):
    def __init__(self, *, base_delay_ms: int, max_attempts: int) -> None:
        self.base_delay_ms = base_delay_ms
        self.max_attempts = max_attempts

    def delay_ms(self, attempt: int) -> int:
        return self.base_delay_ms * 2 ** (attempt - 1)

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError):
            # Interrupted by a worker shutdown: not the job's failure, so no waiting and
            # no giving up (Procrastinate still counts the attempt).
            return RetryDecision(retry_in={"seconds": 0})
        attempt = job.attempts + 1  # the attempt that just failed, counting from 1
        if attempt >= self.max_attempts:
            return None
        return RetryDecision(retry_in={"milliseconds": self.delay_ms(attempt)})


def attempt_number(job: Job) -> int:
    return job.attempts + 1
