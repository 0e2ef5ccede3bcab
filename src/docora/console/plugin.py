"""The console as a Litestar plugin: its pages, templates, static files and the login
limiter it alone uses. It knows nothing of the REST API: docora.asgi mounts both."""

from __future__ import annotations

from litestar.config.app import AppConfig
from litestar.plugins import InitPluginProtocol
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from docora.admin.sessions import LOGINS_PER_MINUTE
from docora.console.routes import LOGIN_LIMITER, TEMPLATES, ConsoleController, static_files
from docora.web.ratelimit import RateLimiter


class OperatorConsole(InitPluginProtocol):
    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend([ConsoleController, static_files()])
        app_config.template_config = TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)
        # Failed logins per peer: this application's own, not a process-wide count.
        app_config.state[LOGIN_LIMITER] = RateLimiter(LOGINS_PER_MINUTE)
        return app_config
