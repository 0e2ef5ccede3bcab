"""What every request handler shares, the REST API's and the console's alike: settings,
the pool, the secret box, the job queue and the rate limiters."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from litestar import Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from docora.config import Settings
from docora.crypto import SecretBox
from docora.git.smart_http import SmartHttpRefs
from docora.jobs.queue import JobQueue
from docora.metrics import HttpMetrics
from docora.net import Resolver, system_resolver
from docora.web.ratelimit import RateLimiter, VerifiedCredentials


@dataclass
class WebContext:
    settings: Settings
    box: SecretBox
    limiter: RateLimiter
    auth_failures: RateLimiter
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
    ctx: WebContext = request.app.state.docora
    assert ctx.pool is not None
    async with ctx.pool.connection() as conn:
        yield conn
