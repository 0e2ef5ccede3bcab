"""What operators read: every list of the operator API and the console, as API bodies."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from psycopg import AsyncConnection

from docora.admin.actions import WATCH_STATUSES
from docora.admin.models import (
    AdminAppDetail,
    AdminAppItem,
    AdminAppPage,
    AdminDeliveryItem,
    AdminDeliveryPage,
    AdminWatchItem,
    AdminWatchPage,
    JobItem,
    OperationBody,
    OverviewBody,
    QueueBody,
    WorkerItem,
    WorkersBody,
)
from docora.admin.paging import decode_cursor, page_of
from docora.bodies import circuit_breaker, lfs_counts, profile, summary
from docora.config import Settings
from docora.errors import MalformedInput, NotFound
from docora.store import apps, checks, deliveries, operations, queue, stats, watches, workers
from docora.store.operations import Operation


async def overview(db: AsyncConnection, settings: Settings) -> OverviewBody:
    numbers = await stats.overview(
        db, gone_after_s=settings.gone_after_s, stalled_after_s=settings.stalled_after_s
    )
    lag, _ = await checks.lag(db)
    return OverviewBody(
        **msgspec.structs.asdict(numbers),
        rescan_lag_seconds=round(lag, 1),
        generated_at=datetime.now(UTC),
    )


async def app_page(
    db: AsyncConnection,
    *,
    search: str | None,
    sort: str,
    order: str,
    cursor: str | None,
    limit: int,
) -> AdminAppPage:
    after = decode_cursor(cursor, 2)
    rows = await apps.app_page(
        db,
        search=search or None,
        sort=sort,
        descending=order == "desc",
        after=(str(after[0]), str(after[1])) if after else None,
        limit=limit + 1,
    )
    rows, next_cursor = page_of(rows, limit, lambda r: (r.sort_value, r.id))
    items = [
        AdminAppItem(
            app_id=r.id,
            app_name=r.name,
            email=r.email,
            base_url=r.base_url,
            delivery_concurrency=r.delivery_concurrency,
            repositories=r.repositories,
            failed=r.failed,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return AdminAppPage(items=items, next_cursor=next_cursor)


async def app_detail(db: AsyncConnection, app_id: str) -> AdminAppDetail:
    app = await apps.get_app(db, app_id)
    if app is None:
        raise NotFound(f"No app {app_id}")
    counts = await apps.watch_status_counts(db, app_id)
    return AdminAppDetail(
        **msgspec.structs.asdict(profile(app)),
        watches={status: counts.get(status, 0) for status in WATCH_STATUSES},
        deliveries_logged=await apps.delivery_count(db, app_id),
    )


def _statuses(status: str | None) -> list[str] | None:
    if status is None:
        return None
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in WATCH_STATUSES]
    if unknown or not wanted:
        raise MalformedInput(f"Invalid request: status must be among {', '.join(WATCH_STATUSES)}")
    return wanted


async def app_ids_for(
    db: AsyncConnection, *, app_id: str | None, app: str | None
) -> list[str] | None:
    """The apps a list is narrowed to: `app_id` exactly, `app` by id or by name (exact in
    any case, else a part of it); None: every app."""
    wanted = [app_id] if app_id else None
    if app and app.strip():
        found = await apps.matching_apps(db, app.strip())
        wanted = found if wanted is None else [a for a in wanted if a in found]
    return wanted


async def watch_page(
    db: AsyncConnection,
    *,
    status: str | None,
    app_id: str | None,
    repository_id: str | None,
    search: str | None,
    cursor: str | None,
    limit: int,
    app: str | None = None,
) -> AdminWatchPage:
    after = decode_cursor(cursor, 3)
    rows = await watches.admin_watch_page(
        db,
        statuses=_statuses(status),
        app_ids=await app_ids_for(db, app_id=app_id, app=app),
        repository_id=repository_id,
        search=search or None,
        after=tuple(str(v) for v in after) if after else None,  # type: ignore[arg-type]
        limit=limit + 1,
    )
    rows, next_cursor = page_of(
        rows, limit, lambda r: (r.watch.status, r.watch.app_id, r.watch.repository_id)
    )
    now = datetime.now(UTC)
    items = [
        AdminWatchItem(
            **msgspec.structs.asdict(summary(r.watch, r.repository)),
            app_id=r.watch.app_id,
            app_name=r.app_name,
            circuit_breaker=circuit_breaker(r.repository, now),
            files_delivered=r.watch.files_delivered,
            pending_changes=r.watch.pending_changes,
            lfs=lfs_counts(r.repository),
        )
        for r in rows
    ]
    return AdminWatchPage(items=items, next_cursor=next_cursor)


async def failing_watches(
    db: AsyncConnection, *, limit: int, cursor: str | None = None
) -> AdminWatchPage:
    """Failed and retrying watches across apps, failed first: what an operator looks at
    first (the console's overview and Failures page, `docora status`)."""
    return await watch_page(
        db,
        status="failed,retrying",
        app_id=None,
        repository_id=None,
        search=None,
        cursor=cursor,
        limit=limit,
    )


async def delivery_page(
    db: AsyncConnection, *, filters: dict[str, object], cursor: str | None, limit: int
) -> AdminDeliveryPage:
    """`filters`: app_id, app (an id or a name), repository_id, event, outcome, since,
    until; None where not asked for."""
    after = decode_cursor(cursor, 1)
    given = {k: v for k, v in filters.items() if k not in ("app_id", "app")}
    given["app_ids"] = await app_ids_for(
        db,
        app_id=filters.get("app_id"),
        app=filters.get("app"),  # type: ignore[arg-type]
    )
    rows = await deliveries.admin_delivery_page(
        db, filters={**given, "before_id": int(after[0]) if after else None}, limit=limit + 1
    )
    rows, next_cursor = page_of(rows, limit, lambda r: (r.id,))
    items = [
        AdminDeliveryItem(
            id=str(r.id),
            delivery_id=str(r.delivery_id),
            app_id=r.app_id,
            app_name=r.app_name,
            repository_id=r.repository_id,
            event=r.event,  # type: ignore[arg-type]
            path=r.path,
            outcome=r.status,  # type: ignore[arg-type]
            status_code=r.status_code,
            attempt=r.attempt,
            duration_ms=r.latency_ms,
            error=r.error,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return AdminDeliveryPage(items=items, next_cursor=next_cursor)


async def queue_view(
    db: AsyncConnection,
    *,
    status: str | None,
    task: str | None,
    cursor: str | None,
    limit: int,
    app: str | None = None,
) -> QueueBody:
    if status is not None and status not in queue.JOB_STATUSES:
        raise MalformedInput(
            f"Invalid request: status must be among {', '.join(queue.JOB_STATUSES)}"
        )
    after = decode_cursor(cursor, 1)
    filters = {
        "status": status,
        "task": task,
        "app_ids": await app_ids_for(db, app_id=None, app=app),
        "before_id": int(after[0]) if after else None,
    }
    rows = await queue.job_page(db, filters=filters, limit=limit + 1)
    rows, next_cursor = page_of(rows, limit, lambda r: (r.id,))
    names = await apps.names(
        db, sorted({str(r.args["app_id"]) for r in rows if "app_id" in r.args})
    )
    items = [
        JobItem(
            id=r.id,
            task=r.task_name,
            status=r.status,
            attempts=r.attempts,
            scheduled_at=r.scheduled_at,
            args=r.args,
            app_name=names.get(str(r.args.get("app_id"))),
        )
        for r in rows
    ]
    return QueueBody(counts=await queue.counts(db), items=items, next_cursor=next_cursor)


async def worker_list(db: AsyncConnection, settings: Settings) -> WorkersBody:
    rows = await workers.list_workers(
        db, gone_after_s=settings.gone_after_s, stalled_after_s=settings.stalled_after_s
    )
    items = [
        WorkerItem(
            worker_id=r.id,
            state="live" if r.alive else "stalled",
            last_heartbeat=r.last_heartbeat,
            heartbeat_age_s=round(r.heartbeat_age_s, 1),
            has_session=r.has_session,
            running_jobs=r.running_jobs,
        )
        for r in rows
    ]
    return WorkersBody(items=items)


def operation_body(operation: Operation) -> OperationBody:
    return OperationBody(
        operation_id=operation.id,
        action=operation.action,  # type: ignore[arg-type]
        status=operation.status,  # type: ignore[arg-type]
        total=operation.total,
        completed=operation.completed,
        succeeded=operation.succeeded,
        failed=operation.failed,
        created_at=operation.created_at,
        finished_at=operation.finished_at,
        app_id=operation.app_id,
        status_filter=operation.status_filter,
    )


async def recent_operations(
    db: AsyncConnection, app_id: str, limit: int = 5
) -> list[OperationBody]:
    return [
        operation_body(op)
        for op in await operations.recent_operations(db, app_id=app_id, limit=limit)
    ]
