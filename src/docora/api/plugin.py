"""The REST API as a Litestar plugin: its routes, its auth dependency and its OpenAPI."""

from __future__ import annotations

import msgspec
from litestar import Router

# Private module: Litestar exports no public base for struct schemas; the OpenAPI test
# fails loudly if an upgrade moves it.
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.config.app import AppConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins import InitPluginProtocol

from docora import __version__
from docora.api.admin import AdminController
from docora.api.apps import OnboardingController
from docora.api.auth import authenticated_app
from docora.api.deliveries import deliveries
from docora.api.hooks import HooksController
from docora.api.metrics import metrics
from docora.api.repositories import RepositoriesController
from docora.api.status import health, version
from docora.api.webhooks import outgoing_webhooks


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


class RestApi(InitPluginProtocol):
    """The client REST API, the operator API, push hooks, metrics and health, with the
    OpenAPI document generated from their msgspec bodies. It knows nothing of the console:
    docora.asgi mounts both side by side."""

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        # The calling app (`app: AppRow`) is this router's dependency, not the application's:
        # the console's handlers never see it.
        app_config.route_handlers.append(
            Router(
                path="/",
                route_handlers=[
                    OnboardingController,
                    RepositoriesController,
                    AdminController,
                    HooksController,
                    metrics,
                    deliveries,
                    health,
                    version,
                ],
                dependencies={"app": Provide(authenticated_app)},
            )
        )
        app_config.openapi_config = OPENAPI
        # Ahead of Litestar's own struct plugin, which would otherwise answer first. A new
        # list: Litestar is iterating over the old one to call each plugin's on_app_init.
        app_config.plugins = [StrictStructSchemaPlugin(), *app_config.plugins]
        return app_config
