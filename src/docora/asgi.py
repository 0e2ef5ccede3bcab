"""The web application every API process serves: the REST API and the operator console side
by side, each a plugin unaware of the other, over the shared plumbing of docora.web (the
context, the error responses, request ids, the access log, metrics and rate limits)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.types import ASGIApp, Receive, Scope, Send

from docora.api.plugin import RestApi
from docora.config import Settings
from docora.console.plugin import OperatorConsole
from docora.crypto import SecretBox
from docora.db import open_pool
from docora.git.smart_http import SmartHttpRefs
from docora.jobs.app import build_job_app
from docora.jobs.queue import JobQueue
from docora.net import Resolver, system_resolver
from docora.web.context import WebContext, provide_connection
from docora.web.errors import EXCEPTION_HANDLERS
from docora.web.observability import request_observer
from docora.web.ratelimit import RateLimiter, rate_limit_middleware

MAX_BODY_BYTES = 1024 * 1024
# How long a request waits for a database connection before it gets 503.
DATABASE_WAIT_S = 5.0


class ObservedLitestar(Litestar):
    """Litestar with request ids, metrics and the access log around everything it answers.
    Its own middleware wraps matched routes only, and an unknown route's 404 is an answer
    an operator must find too."""

    def __init__(self, *args, observe: Callable[[ASGIApp], ASGIApp], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._observed = observe(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        await self._observed(scope, receive, send)


def create_app(settings: Settings, *, resolver: Resolver = system_resolver) -> Litestar:
    """The application; it opens its own pool and job queue in its lifespan."""
    assert settings.database_url, "DATABASE_URL must be resolved before the API starts"
    ctx = WebContext(
        settings=settings,
        box=SecretBox(settings.key_bytes),
        limiter=RateLimiter(settings.rate_limit_per_minute),
        auth_failures=RateLimiter(max(5, settings.rate_limit_per_minute // 10)),
        resolver=resolver,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        ctx.pool = await open_pool(
            settings.database_url, name="docora-api", timeout_s=DATABASE_WAIT_S
        )
        jobs = build_job_app(settings)
        await jobs.open_async(ctx.pool)
        ctx.queue = JobQueue(jobs)
        ctx.refs = SmartHttpRefs(allow_local=settings.allow_local_repositories, resolver=resolver)
        try:
            yield
        finally:
            await ctx.refs.aclose()
            await jobs.close_async()
            await ctx.pool.close()

    cors = CORSConfig(allow_origins=settings.cors_origins) if settings.cors_origins else None
    app = ObservedLitestar(
        plugins=[RestApi(), OperatorConsole()],
        dependencies={"db": Provide(provide_connection)},
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        cors_config=cors,
        request_max_body_size=MAX_BODY_BYTES,
        observe=request_observer(ctx),
        middleware=[rate_limit_middleware(ctx.limiter, ctx.verified)],
        debug=False,
        # Logging is configured once by the process (docora.runtime), not by Litestar.
        logging_config=None,
    )
    app.state.docora = ctx
    return app
