"""The calling app's delivery log."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import get
from litestar.di import NamedDependency
from litestar.params import Parameter
from psycopg import AsyncConnection

from docora.api.auth import BEARER_SECURITY
from docora.api.models import DeliveryBody, DeliveryPage
from docora.api.responses import errors
from docora.errors import MalformedInput
from docora.store.apps import AppRow
from docora.store.deliveries import DeliveryRow, list_deliveries


def _body(row: DeliveryRow) -> DeliveryBody:
    return DeliveryBody(
        id=str(row.id),
        delivery_id=str(row.delivery_id),
        repository_id=row.repository_id,
        event=row.event,
        path=row.path,
        sha=row.sha,
        commit_sha=row.commit_sha,
        status=row.status,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        attempt=row.attempt,
        error=row.error,
        created_at=row.created_at,
    )


@get(
    "/api/deliveries",
    summary="The app's delivery log, newest first",
    security=BEARER_SECURITY,
    responses=errors(400, 401),
    tags=["deliveries"],
)
async def deliveries(
    app: NamedDependency[AppRow],
    db: NamedDependency[AsyncConnection],
    repository_id: Annotated[
        str | None, Parameter(pattern=r"^repo_[0-9a-f]{24}$", description="Only this repository")
    ] = None,
    status: Annotated[
        Literal["delivered", "failed"] | None, Parameter(description="Only this outcome")
    ] = None,
    limit: Annotated[int, Parameter(ge=1, le=200, description="Page size")] = 50,
    cursor: Annotated[
        str | None,
        Parameter(pattern=r"^[0-9]{1,19}$", description="next_cursor of the previous page"),
    ] = None,
) -> DeliveryPage:
    before_id = int(cursor) if cursor else None
    if before_id is not None and before_id > 2**63 - 1:
        raise MalformedInput("Invalid request: cursor is out of range")
    rows = await list_deliveries(
        db,
        app_id=app.id,
        repository_id=repository_id,
        status=status,
        before_id=before_id,
        limit=limit,
    )
    next_cursor = str(rows[-1].id) if len(rows) == limit else None
    return DeliveryPage(deliveries=[_body(r) for r in rows], next_cursor=next_cursor)
