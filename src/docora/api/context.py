"""What request handlers share: settings, the pool, the secret box, job queue, limiters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from litestar import Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from docora.admin.sessions import LOGINS_PER_MINUTE
from docora.api.ratelimit import RateLimiter, VerifiedCredentials
from docora.config import Settings
from docora.crypto import SecretBox
from docora.git.smart_http import SmartHttpRefs
from docora.jobs.queue import JobQueue
from docora.metrics import HttpMetrics
from docora.net import Resolver, system_resolver


@dataclass
class ApiContext:
    settings: Settings
    box: SecretBox
    limiter: RateLimiter
    auth_failures: RateLimiter
    # Failed console logins per peer (5 a minute).
    login_failures: RateLimiter = field(default_factory=lambda: RateLimiter(LOGINS_PER_MINUTE))
    resolver: Resolver = system_resolver
    # Tokens that authenticated here: only they get a rate-limit bucket of their own.
    verified: VerifiedCredentials = field(default_factory=VerifiedCredentials)
    started_at: float = field(default_factory=time.monotonic)
    http_metrics: HttpMetrics = field(default_factory=HttpMetrics)
    pool: AsyncConnectionPool | None = None
    queue: JobQueue | None = None
    # Smart-HTTP ref reads kept alive between registrations (git/smart_http.py).
    refs: SmartHttpRefs | None = None


async def provide_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    ctx: ApiContext = request.app.state.docora
    assert ctx.pool is not None
    async with ctx.pool.connection() as conn:
        yield conn
