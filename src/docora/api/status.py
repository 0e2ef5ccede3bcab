"""Public liveness routes: /health and /version."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from litestar import Request, Response, get

from docora import __version__
from docora.api.models import HealthBody, VersionBody
from docora.api.responses import errors
from docora.web.context import WebContext

HEALTH_TIMEOUT_S = 2.0


def iso_millis(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


async def _probe(ctx: WebContext) -> tuple[str, str]:
    assert ctx.pool is not None
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_S):
            async with ctx.pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
                cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
                row = await cur.fetchone()
    except Exception:
        return "unavailable", "unavailable"
    return "ok", "ok" if row and row[0] else "missing_schema"


@get(
    "/health",
    summary="Service health",
    description="200 when Postgres and the job queue schema are reachable; 503 otherwise.",
    responses=errors(503),
    tags=["status"],
)
async def health(request: Request) -> Response[HealthBody]:
    ctx: WebContext = request.app.state.docora
    database, queue = await _probe(ctx)
    status = "unavailable" if database != "ok" else "ok" if queue == "ok" else "degraded"
    body = HealthBody(
        status=status,
        timestamp=iso_millis(datetime.now(UTC)),
        uptime=round(time.monotonic() - ctx.started_at, 3),
        database=database,
        queue=queue,
    )
    return Response(body, status_code=200 if status == "ok" else 503)


@get("/version", summary="Service version", tags=["status"])
async def version() -> VersionBody:
    return VersionBody(version=__version__)
