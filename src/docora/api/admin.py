"""The operator API (SPEC section 9): every route needs the admin token, or a console
session plus its CSRF token for anything that changes state."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, JSONBody, Parameter, QueryParameter
from psycopg import AsyncConnection

from docora.admin import actions, queries, trends
from docora.admin.models import (
    AdminAppDetail,
    AdminAppPage,
    AdminDeliveryPage,
    AdminWatchPage,
    DeliveryTrend,
    OperationBody,
    OperationRequest,
    OperationStarted,
    OverviewBody,
    QueueBody,
    RepositoryTrend,
    TokenBody,
    TrendWindow,
    WorkersBody,
)
from docora.admin.paging import DEFAULT_LIMIT, MAX_LIMIT
from docora.admin.sessions import COOKIE, CSRF_HEADER, csrf_matches, session_of
from docora.api.auth import admin_token_matches, refuse_brute_force, unauthorized
from docora.api.responses import errors
from docora.bodies import MessageBody
from docora.errors import Forbidden
from docora.web.context import WebContext
from docora.web.ratelimit import bearer_token, peer_address

OPERATOR_SECURITY = [{"AdminToken": []}, {"ConsoleSession": []}]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description="Items per page (1-200)")]
CursorParam = Annotated[str | None, Parameter(description="next_cursor of the previous page")]
# Named `app` in the query; not in Python, where `app` is the app-auth dependency's name.
AppFilter = Annotated[
    str | None,
    QueryParameter(
        name="app",
        description="An app's id or name: the name matches in any case, or else as a part "
        "of names (every app it matches)",
    ),
]
AppIdParam = Parameter(pattern=r"^app_[0-9a-f]{24}$", description="app_ + 24 hex")
RepositoryIdParam = Parameter(pattern=r"^repo_[0-9a-f]{24}$", description="repo_ + 24 hex")
OperationIdParam = Parameter(pattern=r"^op_[0-9a-f]{24}$", description="op_ + 24 hex")


async def authenticated_operator(request: Request, db: NamedDependency[AsyncConnection]) -> str:
    """Who is acting: "admin-token", or the console user. Raises 401/403/429."""
    ctx: WebContext = request.app.state.docora
    settings = ctx.settings
    peer = peer_address(request.scope)
    refuse_brute_force(ctx, peer)
    token = bearer_token(request.scope)
    if token is not None:
        if admin_token_matches(ctx, token):
            return "admin-token"
        raise unauthorized(ctx, peer, "Invalid admin token")
    session = await session_of(db, settings, request.cookies.get(COOKIE))
    if session is not None:
        given = request.headers.get(CSRF_HEADER)
        if request.method not in SAFE_METHODS and not csrf_matches(given, session.csrf_token):
            raise Forbidden("Missing or wrong X-CSRF-Token for this console session")
        return session.username
    raise unauthorized(ctx, peer, "Operator credentials required (admin token or console login)")


class AdminController(Controller):
    path = "/api/admin"
    tags: ClassVar[list[str]] = ["admin"]
    security = OPERATOR_SECURITY
    dependencies: ClassVar = {"operator": Provide(authenticated_operator)}

    @get("/overview", summary="Counts across the whole system", responses=errors(401))
    async def overview(
        self, request: Request, operator: NamedDependency[str], db: NamedDependency[AsyncConnection]
    ) -> OverviewBody:
        return await queries.overview(db, request.app.state.docora.settings)

    @get("/apps", summary="Apps with their watch and failure counts", responses=errors(400, 401))
    async def apps(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        search: FromQuery[str | None] = None,
        sort: FromQuery[Literal["app_name", "created_at", "failed"]] = "created_at",
        order: FromQuery[Literal["asc", "desc"]] = "asc",
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> AdminAppPage:
        return await queries.app_page(
            db, search=search, sort=sort, order=order, cursor=cursor, limit=limit
        )

    @get(
        "/apps/{app_id:str}",
        summary="One app and its watches by status",
        responses=errors(401, 404),
    )
    async def app(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        app_id: str = AppIdParam,
    ) -> AdminAppDetail:
        return await queries.app_detail(db, app_id)

    @delete(
        "/apps/{app_id:str}",
        status_code=204,
        summary="Delete an app, its watches, delivered state and log",
        description="Repositories nobody else watches go too, and their mirrors.",
        responses=errors(401, 404),
    )
    async def delete_app(
        self,
        request: Request,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        app_id: str = AppIdParam,
    ) -> None:
        await actions.delete_app(db, request.app.state.docora.queue, app_id)

    @post(
        "/apps/{app_id:str}/token",
        status_code=200,
        summary="Rotate the app's bearer token",
        description="The old token stops working at once; the new one is shown only here.",
        responses=errors(401, 404),
    )
    async def rotate_token(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        app_id: str = AppIdParam,
    ) -> TokenBody:
        return TokenBody(token=await actions.rotate_token(db, app_id))

    @get("/watches", summary="Watches across apps, failing first", responses=errors(400, 401))
    async def watches(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        status: Annotated[
            str | None, Parameter(description="A status, or several separated by commas")
        ] = None,
        app_id: Annotated[str | None, Parameter(pattern=r"^app_[0-9a-f]{24}$")] = None,
        repository_id: Annotated[str | None, Parameter(pattern=r"^repo_[0-9a-f]{24}$")] = None,
        search: FromQuery[str | None] = None,
        app_filter: AppFilter = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> AdminWatchPage:
        return await queries.watch_page(
            db,
            status=status,
            app_id=app_id,
            app=app_filter,
            repository_id=repository_id,
            search=search,
            cursor=cursor,
            limit=limit,
        )

    @post(
        "/watches/{app_id:str}/{repository_id:str}/retry",
        status_code=202,
        summary="Clear a watch's error and retry count; sync now",
        responses=errors(401, 404),
    )
    async def retry(
        self,
        request: Request,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        app_id: str = AppIdParam,
        repository_id: str = RepositoryIdParam,
    ) -> MessageBody:
        queue = request.app.state.docora.queue
        await actions.watch_action(db, queue, "retry", app_id, repository_id)
        return MessageBody(message="Retry queued")

    @post(
        "/watches/{app_id:str}/{repository_id:str}/resync",
        status_code=202,
        summary="Forget what the app holds and send every file again",
        responses=errors(401, 404),
    )
    async def resync(
        self,
        request: Request,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        app_id: str = AppIdParam,
        repository_id: str = RepositoryIdParam,
    ) -> MessageBody:
        queue = request.app.state.docora.queue
        await actions.watch_action(db, queue, "resync", app_id, repository_id)
        return MessageBody(message="Resync queued")

    @post(
        "/operations",
        status_code=202,
        summary="Start a bulk retry or resync",
        description="`retry` covers failed and retrying watches unless `status` says "
        "otherwise; `resync` covers every watch (of `app_id`, when given).",
        responses=errors(400, 401, 404, 422),
    )
    async def start_operation(
        self,
        request: Request,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        data: JSONBody[OperationRequest],
    ) -> OperationStarted:
        operation = await actions.start_operation(
            db,
            request.app.state.docora.queue,
            action=data.action,
            app_id=data.app_id,
            status=data.status,
        )
        return OperationStarted(operation_id=operation.id, total=operation.total)

    @get(
        "/operations/{operation_id:str}",
        summary="A bulk operation's progress",
        responses=errors(401, 404),
    )
    async def operation(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        operation_id: str = OperationIdParam,
    ) -> OperationBody:
        return queries.operation_body(await actions.get_operation(db, operation_id))

    @post(
        "/operations/{operation_id:str}/cancel",
        status_code=202,
        summary="Stop a bulk operation after its current item",
        responses=errors(401, 404),
    )
    async def cancel(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        operation_id: str = OperationIdParam,
    ) -> OperationBody:
        return queries.operation_body(await actions.cancel_operation(db, operation_id))

    @get(
        "/deliveries",
        summary="The delivery log across apps, newest first",
        responses=errors(400, 401),
    )
    async def deliveries(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        app_id: Annotated[str | None, Parameter(pattern=r"^app_[0-9a-f]{24}$")] = None,
        repository_id: Annotated[str | None, Parameter(pattern=r"^repo_[0-9a-f]{24}$")] = None,
        event: FromQuery[Literal["create", "update", "delete", "sync_failed"] | None] = None,
        outcome: FromQuery[Literal["delivered", "failed"] | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        app_filter: AppFilter = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> AdminDeliveryPage:
        filters = {
            "app_id": app_id,
            "app": app_filter,
            "repository_id": repository_id,
            "event": event,
            "outcome": outcome,
            "since": since,
            "until": until,
        }
        return await queries.delivery_page(db, filters=filters, cursor=cursor, limit=limit)

    @get("/queue", summary="Job counts and jobs by status and task", responses=errors(400, 401))
    async def queue(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        status: FromQuery[str | None] = None,
        task: FromQuery[str | None] = None,
        app_filter: AppFilter = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: CursorParam = None,
    ) -> QueueBody:
        return await queries.queue_view(
            db, status=status, task=task, app=app_filter, cursor=cursor, limit=limit
        )

    @get(
        "/trends/deliveries",
        summary="Delivery attempts over time by outcome, with latency percentiles",
        description="Every step of the window (zeros where nothing was sent), across apps "
        "or for one (`app_id`). What the console's charts draw.",
        responses=errors(400, 401),
    )
    async def delivery_trend(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        window: FromQuery[TrendWindow] = "1h",
        app_id: Annotated[str | None, Parameter(pattern=r"^app_[0-9a-f]{24}$")] = None,
    ) -> DeliveryTrend:
        return await trends.delivery_trend(db, window=window, app_id=app_id)

    @get(
        "/trends/repositories/{repository_id:str}",
        summary="A repository's sync durations and the rescan lag over time",
        responses=errors(400, 401, 404),
    )
    async def repository_trend(
        self,
        operator: NamedDependency[str],
        db: NamedDependency[AsyncConnection],
        repository_id: str = RepositoryIdParam,
        window: FromQuery[TrendWindow] = "24h",
    ) -> RepositoryTrend:
        repository = await trends.existing_repository(db, repository_id)
        return await trends.repository_trend(db, repository=repository, window=window)

    @get("/workers", summary="Live and stalled workers", responses=errors(401))
    async def workers(
        self, request: Request, operator: NamedDependency[str], db: NamedDependency[AsyncConnection]
    ) -> WorkersBody:
        return await queries.worker_list(db, request.app.state.docora.settings)
