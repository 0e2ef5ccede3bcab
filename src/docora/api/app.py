"""Assembling the Litestar application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
from litestar import Litestar

# Private module: Litestar exports no public base for struct schemas; the OpenAPI test
# fails loudly if an upgrade moves it.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from docora import __version__
from docora.api.admin import AdminController
from docora.api.apps import OnboardingController
from docora.api.auth import authenticated_app
from docora.api.context import ApiContext, provide_connection
from docora.api.deliveries import deliveries
from docora.api.errors import EXCEPTION_HANDLERS
from docora.api.hooks import HooksController
from docora.api.metrics import metrics
from docora.api.observability import observability_middleware
from docora.api.ratelimit import RateLimiter, rate_limit_middleware
from docora.api.repositories import RepositoriesController
from docora.api.status import health, version
from docora.api.webhooks import outgoing_webhooks
from docora.config import Settings
from docora.console.routes import TEMPLATES, ConsoleController, static_files
from docora.crypto import SecretBox
from docora.db import open_pool
from docora.git.smart_http import SmartHttpRefs
from docora.jobs.app import build_job_app
from docora.jobs.queue import JobQueue
from docora.net import Resolver, system_resolver

MAX_BODY_BYTES = 1024 * 1024
# How long a request waits for a database connection before it gets 503.
DATABASE_WAIT_S = 5.0


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Request bodies refuse unknown fields (`forbid_unknown_fields`); say so in the schema
    with `additionalProperties: false`, which Litestar's own plugin leaves out."""

    def to_openapi_schema(self, field_definition, schema_creator):
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if msgspec.inspect.type_info(field_definition.type_).forbid_unknown_fields:
            schema.additional_properties = False
        return schema


OPENAPI = OpenAPIConfig(
    title="Docora",
    version=__version__,
    description="Watches git repositories and pushes every file change to client apps as "
    "HMAC-signed webhooks. Authenticate with `Authorization: Bearer <token>`; every error is "
    '`{"error": "..."}`.',
    path="/schema",
    webhooks=outgoing_webhooks(),
    render_plugins=[SwaggerRenderPlugin(path="/"), JsonRenderPlugin(path="/openapi.json")],
    components=Components(
        security_schemes={
            "BearerAuth": SecurityScheme(
                type="http",
                scheme="bearer",
                description="App token (docora_ + 64 hex) returned once by onboarding",
            ),
            "AdminToken": SecurityScheme(
                type="http", scheme="bearer", description="The server's ADMIN_TOKEN"
            ),
            "ConsoleSession": SecurityScheme(
                type="apiKey",
                name="docora_session",
                security_scheme_in="cookie",
                description="The operator console's session cookie; requests that change "
                "state also send its CSRF token as X-CSRF-Token",
            ),
        }
    ),
)


def create_app(settings: Settings, *, resolver: Resolver = system_resolver) -> Litestar:
    """The API application; it opens its own pool and job queue in its lifespan."""
    assert settings.database_url, "DATABASE_URL must be resolved before the API starts"
    ctx = ApiContext(
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
    app = Litestar(
        route_handlers=[
            OnboardingController,
            RepositoriesController,
            AdminController,
            ConsoleController,
            static_files(),
            HooksController,
            metrics,
            deliveries,
            health,
            version,
        ],
        dependencies={
            "db": Provide(provide_connection),
            "app": Provide(authenticated_app),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=OPENAPI,
        cors_config=cors,
        request_max_body_size=MAX_BODY_BYTES,
        plugins=[StrictStructSchemaPlugin()],
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        middleware=[
            observability_middleware(ctx.http_metrics),
            rate_limit_middleware(ctx.limiter, ctx.verified),
        ],
        debug=False,
        # Logging is configured once by the process (docora.runtime), not by Litestar.
        logging_config=None,
    )
    app.state.docora = ctx
    return app
