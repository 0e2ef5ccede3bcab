"""GET /metrics: Prometheus text, the state read from Postgres plus this process's HTTP
metrics; behind METRICS_TOKEN when set."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.di import NamedDependency
from psycopg import AsyncConnection

from docora.crypto import secret_matches
from docora.metrics import CONTENT_TYPE_LATEST, Rescans, exposition
from docora.store import checks, stats
from docora.web.errors import error_response
from docora.web.ratelimit import bearer_token


@get("/metrics", include_in_schema=False, media_type=CONTENT_TYPE_LATEST)
async def metrics(request: Request, db: NamedDependency[AsyncConnection]) -> Response:
    ctx = request.app.state.docora
    expected = ctx.settings.metrics_token
    if expected:
        given = bearer_token(request.scope)
        if given is None or not secret_matches(given, expected):
            return error_response(
                401, "A valid METRICS_TOKEN is required", {"WWW-Authenticate": "Bearer"}
            )
    overview = await stats.overview(
        db,
        gone_after_s=ctx.settings.gone_after_s,
        stalled_after_s=ctx.settings.stalled_after_s,
    )
    totals = await stats.delivery_totals(db)
    oldest = await stats.oldest_todo_seconds(db)
    lag, _ = await checks.lag(db)
    rescans = Rescans(lag_seconds=lag, totals=await checks.totals(db))
    body = exposition(ctx.http_metrics, overview, totals, oldest, rescans)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
