"""The console's pages and forms. Every form posts, carries the session's CSRF token and
answers with a redirect (303), so the back button and a reload never repeat an action."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from psycopg import AsyncConnection

from docora.admin import actions, queries, trends
from docora.admin.onboarding import create_app_record, validated_base_url
from docora.admin.passwords import password_matches
from docora.admin.sessions import (
    COOKIE,
    CSRF_FIELD,
    IDLE_S,
    console_enabled,
    cookie_is_secure,
    csrf_matches,
    new_session,
    session_digest,
    session_of,
    session_secret,
    sign,
    unsign,
)
from docora.bodies import OnboardRequest, circuit_breaker
from docora.console import charts
from docora.crypto import secret_matches
from docora.errors import DocoraError, Forbidden
from docora.store import sessions
from docora.web.context import WebContext
from docora.web.errors import status_of
from docora.web.ratelimit import RateLimiter, peer_address

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PAGE = 50
# Where the application state keeps the failed-login limiter (console/plugin.py).
LOGIN_LIMITER = "console_login_failures"
# The console only ever talks to its own origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No live session: the page redirects to the login form."""


class Console(msgspec.Struct):
    """What every page knows: who is signed in and the CSRF token its forms carry."""

    username: str
    csrf_token: str


def _ctx(request: Request) -> WebContext:
    return request.app.state.docora


async def console_user(request: Request, db: NamedDependency[AsyncConnection]) -> Console:
    ctx = _ctx(request)
    if not console_enabled(ctx.settings):
        raise NotFoundException()
    session = await session_of(db, ctx.settings, request.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired()
    return Console(username=session.username, csrf_token=session.csrf_token)


def _require_csrf(console: NamedDependency[Console], form: dict[str, Any]) -> None:
    if not csrf_matches(form.get(CSRF_FIELD), console.csrf_token):
        raise Forbidden("The form has expired or did not come from this console; reload it")


def page(name: str, console: Console | None, **context: Any) -> Template:
    return Template(
        name,
        context={"console": console, "csrf_field": CSRF_FIELD, **context},
        headers=SECURITY_HEADERS,
    )


def back(url: str, **notice: str) -> Redirect:
    """Redirect after POST; a short notice travels in the query string."""
    query = f"?{urlencode(notice)}" if notice else ""
    return Redirect(url + query, status_code=303, headers=SECURITY_HEADERS)


def _session_cookie(request: Request, value: str, max_age: int) -> dict[str, Any]:
    client = request.scope.get("client")
    return {
        "key": COOKIE,
        "value": value,
        "path": "/",
        "httponly": True,
        "samesite": "strict",
        "secure": cookie_is_secure(request.url.scheme, client[0] if client else None),
        "max_age": max_age,
    }


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    return Redirect("/admin/login", status_code=303, headers=SECURITY_HEADERS)


def console_error(request: Request, exc: DocoraError) -> Response:
    return Template(
        "error.html",
        context={"console": None, "message": exc.message, "back": request.headers.get("referer")},
        status_code=status_of(exc),
        headers=SECURITY_HEADERS,
    )


class ConsoleController(Controller):
    path = "/admin"
    include_in_schema = False
    dependencies: ClassVar = {"console": Provide(console_user)}
    exception_handlers: ClassVar = {LoginRequired: login_redirect, DocoraError: console_error}

    # --- signing in and out -----------------------------------------------------------

    @get("/login")
    async def login_form(self, request: Request) -> Template:
        if not console_enabled(_ctx(request).settings):
            raise NotFoundException()
        return page("login.html", None, error=None)

    @post("/login", status_code=303)
    async def login(
        self,
        request: Request,
        db: NamedDependency[AsyncConnection],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response:
        ctx = _ctx(request)
        settings = ctx.settings
        if not console_enabled(settings):
            raise NotFoundException()
        peer = peer_address(request.scope)
        logins: RateLimiter = request.app.state[LOGIN_LIMITER]
        wait = logins.blocked_for(peer)
        if wait > 0:
            template = page("login.html", None, error="Too many failed logins; wait a minute.")
            template.status_code = 429
            template.headers["Retry-After"] = str(max(1, math.ceil(wait)))
            return template
        username, password = str(data.get("username", "")), str(data.get("password", ""))
        user_ok = secret_matches(username, settings.admin_username or "")
        password_ok = password_matches(password, settings.admin_password or "")
        if not (user_ok and password_ok):
            logins.acquire(peer)
            template = page("login.html", None, error="Wrong username or password.")
            template.status_code = 401
            return template
        session_id, csrf_token = new_session()
        await sessions.purge_expired(db, IDLE_S)
        await sessions.create_session(db, session_digest(session_id), username, csrf_token)
        response = back("/admin")
        response.set_cookie(
            **_session_cookie(request, sign(session_secret(settings), session_id), IDLE_S)
        )
        return response

    @post("/logout", status_code=303)
    async def logout(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response:
        _require_csrf(console, data)
        session_id = unsign(session_secret(_ctx(request).settings), request.cookies.get(COOKIE))
        if session_id:
            await sessions.delete_session(db, session_digest(session_id))
        response = Redirect("/admin/login", status_code=303, headers=SECURITY_HEADERS)
        response.set_cookie(**_session_cookie(request, "", 0))
        return response

    # --- pages -------------------------------------------------------------------------

    @get("/")
    async def overview(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        window: FromQuery[str] = "1h",
    ) -> Template:
        settings = _ctx(request).settings
        window = _window(window, "1h")
        numbers = await queries.overview(db, settings)
        failing = await queries.failing_watches(db, limit=10)
        deliveries = await trends.delivery_trend(db, window=window, app_id=None)
        return page(
            "overview.html",
            console,
            overview=numbers,
            failing=failing,
            window=window,
            charts=charts.delivery_charts(deliveries, "all"),
        )

    @get("/apps")
    async def apps(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        search: FromQuery[str | None] = None,
        sort: FromQuery[str] = "created_at",
        order: FromQuery[str] = "asc",
        cursor: FromQuery[str | None] = None,
        notice: FromQuery[str | None] = None,
    ) -> Template:
        sort = sort if sort in ("app_name", "created_at", "failed") else "created_at"
        order = order if order in ("asc", "desc") else "asc"
        listing = await queries.app_page(
            db, search=search, sort=sort, order=order, cursor=cursor, limit=PAGE
        )
        return page(
            "apps.html",
            console,
            listing=listing,
            search=search or "",
            sort=sort,
            order=order,
            notice=notice,
        )

    @get("/apps/{app_id:str}")
    async def app(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        app_id: FromPath[str],
        status: FromQuery[str | None] = None,
        search: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
        notice: FromQuery[str | None] = None,
        window: FromQuery[str] = "24h",
    ) -> Template:
        window = _window(window, "24h")
        detail = await queries.app_detail(db, app_id)
        watches = await queries.watch_page(
            db,
            status=status or None,
            app_id=app_id,
            repository_id=None,
            search=search,
            cursor=cursor,
            limit=PAGE,
        )
        recent = await queries.recent_operations(db, app_id)
        return page(
            "app.html",
            console,
            app=detail,
            watches=watches,
            status=status or "",
            search=search or "",
            operations=recent,
            notice=notice,
            window=window,
            charts=charts.delivery_charts(
                await trends.delivery_trend(db, window=window, app_id=app_id), "app"
            ),
        )

    @get("/repositories/{repository_id:str}")
    async def repository(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        repository_id: FromPath[str],
        cursor: FromQuery[str | None] = None,
        notice: FromQuery[str | None] = None,
        window: FromQuery[str] = "24h",
    ) -> Template:
        window = _window(window, "24h")
        repo = await trends.existing_repository(db, repository_id)
        trend = await trends.repository_trend(db, repository=repo, window=window)
        watches = await queries.watch_page(
            db,
            status=None,
            app_id=None,
            repository_id=repository_id,
            search=None,
            cursor=cursor,
            limit=PAGE,
        )
        return page(
            "repository.html",
            console,
            repository=repo,
            breaker=circuit_breaker(repo, datetime.now(UTC)),
            watches=watches,
            notice=notice,
            window=window,
            charts=charts.repository_charts(trend, "repo"),
        )

    @get("/failures")
    async def failures(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        cursor: FromQuery[str | None] = None,
        notice: FromQuery[str | None] = None,
    ) -> Template:
        watches = await queries.failing_watches(db, limit=PAGE, cursor=cursor)
        numbers = await queries.overview(db, _ctx(request).settings)
        return page("failures.html", console, watches=watches, overview=numbers, notice=notice)

    @get("/deliveries")
    async def deliveries(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        app: FromQuery[str | None] = None,
        repository_id: FromQuery[str | None] = None,
        event: FromQuery[str | None] = None,
        outcome: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        filters = {
            "app": app or None,
            "repository_id": repository_id or None,
            "event": event or None,
            "outcome": outcome or None,
        }
        log = await queries.delivery_page(db, filters=filters, cursor=cursor, limit=PAGE)
        return page("deliveries.html", console, log=log, filters=filters, query=_query(filters))

    @get("/queue")
    async def queue(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        status: FromQuery[str | None] = None,
        task: FromQuery[str | None] = None,
        app: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        view = await queries.queue_view(
            db, status=status or None, task=task or None, app=app or None, cursor=cursor, limit=PAGE
        )
        filters = {"status": status or None, "task": task or None, "app": app or None}
        return page(
            "queue.html",
            console,
            queue=view,
            status=status or "",
            task=task or "",
            app=app or "",
            query=_query(filters),
        )

    @get("/workers")
    async def workers(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
    ) -> Template:
        listing = await queries.worker_list(db, _ctx(request).settings)
        return page("workers.html", console, workers=listing)

    @get("/operations/{operation_id:str}")
    async def operation(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        operation_id: FromPath[str],
    ) -> Template:
        operation = queries.operation_body(await actions.get_operation(db, operation_id))
        return page("operation.html", console, operation=operation)

    @get("/onboard")
    async def onboard_form(self, console: NamedDependency[Console]) -> Template:
        return page("onboard.html", console, error=None, values={}, created=None)

    @get("/apps/{app_id:str}/delete")
    async def delete_form(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        app_id: FromPath[str],
    ) -> Template:
        detail = await queries.app_detail(db, app_id)
        return page("delete.html", console, app=detail, watches=sum(detail.watches.values()))

    # --- actions -----------------------------------------------------------------------

    @post("/onboard", status_code=200)
    async def onboard(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        data: URLEncodedBody[dict[str, str]],
    ) -> Template:
        _require_csrf(console, data)
        ctx = _ctx(request)
        values = {k: str(v).strip() for k, v in data.items() if k != CSRF_FIELD}
        try:
            onboard_request = msgspec.convert(
                {
                    "app_name": values.get("app_name", ""),
                    "base_url": values.get("base_url", ""),
                    "email": values.get("email", ""),
                    "client_auth_key": values.get("client_auth_key", ""),
                    "website": values.get("website") or None,
                    "description": values.get("description") or None,
                    "delivery_concurrency": values.get("delivery_concurrency") or "1",
                },
                OnboardRequest,
                strict=False,
            )
            base_url = await validated_base_url(
                ctx.settings, ctx.resolver, onboard_request.base_url
            )
        except (msgspec.ValidationError, DocoraError) as exc:
            message = (
                str(exc).replace("$.", "")
                if isinstance(exc, msgspec.ValidationError)
                else exc.message
            )
            template = page("onboard.html", console, error=message, values=values, created=None)
            template.status_code = 422
            return template
        row, token = await create_app_record(db, ctx.box, onboard_request, base_url)
        # The token is in this one response (never stored, never in a URL): shown once.
        return page(
            "onboard.html",
            console,
            error=None,
            values={},
            created={"app_id": row.id, "token": token},
        )

    @post("/watches/{app_id:str}/{repository_id:str}/{action:str}", status_code=303)
    async def watch_action(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        app_id: FromPath[str],
        repository_id: FromPath[str],
        action: FromPath[str],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response:
        _require_csrf(console, data)
        await actions.watch_action(db, _ctx(request).queue, action, app_id, repository_id)
        return back(
            _safe_next(data, f"/admin/apps/{app_id}"),
            notice=f"{action.capitalize()} queued for {repository_id}",
        )

    @post("/operations", status_code=303)
    async def start_operation(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response:
        _require_csrf(console, data)
        operation = await actions.start_operation(
            db,
            _ctx(request).queue,
            action=str(data.get("action", "")),
            app_id=data.get("app_id") or None,
            status=data.get("status") or None,
        )
        return back(f"/admin/operations/{operation.id}")

    @post("/operations/{operation_id:str}/cancel", status_code=303)
    async def cancel_operation(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        operation_id: FromPath[str],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response:
        _require_csrf(console, data)
        await actions.cancel_operation(db, operation_id)
        return back(f"/admin/operations/{operation_id}")

    @post("/apps/{app_id:str}/token", status_code=200)
    async def rotate_token(
        self,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        app_id: FromPath[str],
        data: URLEncodedBody[dict[str, str]],
    ) -> Template:
        _require_csrf(console, data)
        token = await actions.rotate_token(db, app_id)
        detail = await queries.app_detail(db, app_id)
        return page("token.html", console, app=detail, token=token)

    @post("/apps/{app_id:str}/delete", status_code=303)
    async def delete_app(
        self,
        request: Request,
        console: NamedDependency[Console],
        db: NamedDependency[AsyncConnection],
        app_id: FromPath[str],
        data: URLEncodedBody[dict[str, str]],
    ) -> Response:
        _require_csrf(console, data)
        await actions.delete_app(db, _ctx(request).queue, app_id)
        return back("/admin/apps", notice=f"Deleted {app_id}")


def _query(filters: dict[str, str | None]) -> str:
    """The filters that were given, as a query string a next-page link starts with."""
    given = {k: v for k, v in filters.items() if v}
    return urlencode(given) + "&" if given else ""


def _window(asked: str, default: str) -> str:
    """A chart window the page was asked for; anything else is the page's default."""
    return asked if asked in trends.WINDOWS else default


def _safe_next(data: dict, default: str) -> str:
    """Where a form asked to go back to: only console pages (no open redirect)."""
    target = str(data.get("next") or "")
    if target.startswith("/admin/") and "//" not in target and "\\" not in target:
        return target
    return default


def static_files():
    return create_static_files_router(
        path="/admin/static", directories=[STATIC], name="console-static"
    )
