"""Bodies of the operator API (SPEC section 9); the console renders the same structs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from docora.bodies import (
    AppProfile,
    CircuitBreakerBody,
    LfsBody,
    WatchStatus,
    WatchSummary,
)

Cursor = Annotated[str | None, Meta(description="Opaque; pass as ?cursor= for the next page")]


class OverviewBody(msgspec.Struct):
    apps: int
    repositories: int
    watches: Annotated[dict[str, int], Meta(description="Watches by status (all five present)")]
    circuit_breakers_open: int
    queue: Annotated[dict[str, int], Meta(description="Jobs todo, doing and failed")]
    workers_alive: int
    deliveries_last_hour: Annotated[dict[str, int], Meta(description="succeeded, failed")]
    rescan_lag_seconds: Annotated[
        float,
        Meta(description="How long the oldest due rescan has waited (0: the checks keep up)"),
    ]
    generated_at: datetime


class AdminAppItem(msgspec.Struct):
    app_id: str
    app_name: str
    email: str
    base_url: str
    delivery_concurrency: int
    repositories: int
    failed: Annotated[int, Meta(description="Watches whose status is failed")]
    created_at: datetime


class AdminAppPage(msgspec.Struct):
    items: list[AdminAppItem]
    next_cursor: Cursor


class AdminAppDetail(AppProfile):
    """The app's own profile (GET /api/apps/me) and what the operator adds to it."""

    watches: Annotated[dict[str, int], Meta(description="Watches by status (all five present)")]
    deliveries_logged: int


class TokenBody(msgspec.Struct):
    token: Annotated[str, Meta(description="The new bearer token, shown only this once")]


class AdminWatchItem(WatchSummary):
    """A watch as the app sees it (GET /api/repositories/{id}), plus whose it is."""

    app_id: str
    app_name: str
    circuit_breaker: CircuitBreakerBody
    files_delivered: int
    pending_changes: int | None
    lfs: LfsBody


class AdminWatchPage(msgspec.Struct):
    items: list[AdminWatchItem]
    next_cursor: Cursor


class OperationRequest(msgspec.Struct, forbid_unknown_fields=True):
    action: Literal["retry", "resync"]
    app_id: Annotated[str, Meta(pattern=r"^app_[0-9a-f]{24}$")] | None = None
    status: WatchStatus | None = None


class OperationStarted(msgspec.Struct):
    operation_id: str
    total: int


class OperationBody(msgspec.Struct):
    operation_id: str
    action: Literal["retry", "resync"]
    status: Literal["running", "done", "cancelled", "failed"]
    total: int
    completed: int
    succeeded: int
    failed: int
    created_at: datetime
    finished_at: datetime | None
    app_id: str | None
    status_filter: str | None


class AdminDeliveryItem(msgspec.Struct):
    id: str
    delivery_id: str
    app_id: str
    app_name: Annotated[str | None, Meta(description="null once the app is deleted")]
    repository_id: str
    event: Literal["create", "update", "delete", "sync_failed", "batch"]
    path: str | None
    outcome: Literal["delivered", "failed"]
    status_code: int | None
    attempt: int
    duration_ms: int
    error: str | None
    created_at: datetime


class AdminDeliveryPage(msgspec.Struct):
    items: list[AdminDeliveryItem]
    next_cursor: Cursor


class JobItem(msgspec.Struct):
    id: int
    task: str
    status: str
    attempts: int
    scheduled_at: datetime | None
    args: dict
    app_name: Annotated[str | None, Meta(description="The name of the app in args, if any")]


class QueueBody(msgspec.Struct):
    counts: Annotated[dict[str, int], Meta(description="Jobs by status (all six present)")]
    items: list[JobItem]
    next_cursor: Cursor


class WorkerItem(msgspec.Struct):
    worker_id: int
    state: Literal["live", "stalled"]
    last_heartbeat: datetime
    heartbeat_age_s: float
    has_session: Annotated[bool, Meta(description="Holds its Postgres presence session")]
    running_jobs: int


class WorkersBody(msgspec.Struct):
    items: list[WorkerItem]


TrendWindow = Annotated[
    Literal["1h", "24h", "7d"],
    Meta(description="How far back: 1h in 1-minute steps, 24h in 10-minute, 7d in hourly"),
]


class DeliveryPoint(msgspec.Struct):
    at: Annotated[datetime, Meta(description="Start of the step (UTC)")]
    delivered: int
    failed: int
    p50_ms: Annotated[int | None, Meta(description="Median latency of the step's attempts")]
    p95_ms: Annotated[
        int | None,
        Meta(description="95th percentile; a value of 30000 means 30 s or more"),
    ]


class DeliveryTrend(msgspec.Struct):
    """Delivery attempts over time, from per-minute rollups kept with the delivery log.
    Percentiles are read from latency buckets (5, 10, 25, 50, 100, 250, 500 ms, 1, 2.5, 5,
    10, 30 s), interpolated within the bucket."""

    window: TrendWindow
    step_seconds: int
    app_id: str | None
    points: Annotated[list[DeliveryPoint], Meta(description="Every step, oldest first")]
    delivered: int
    failed: int
    p50_ms: int | None
    p95_ms: int | None
    generated_at: datetime


class SyncPoint(msgspec.Struct):
    finished_at: datetime
    duration_ms: int
    outcome: Literal["synced", "unchanged", "failed"]
    commit_sha: str | None


class LagPoint(msgspec.Struct):
    at: Annotated[datetime, Meta(description="Start of the step (UTC)")]
    checks: Annotated[int, Meta(description="Rescan checks recorded in the step, all workers")]
    max_lag_seconds: Annotated[
        float, Meta(description="How long the step's most overdue check had waited")
    ]


class RepositoryTrend(msgspec.Struct):
    """A repository's syncs, and the rescan checkers' lag over the same window (the
    checkers serve every repository from one queue: its lag is what this one's checks
    waited at most)."""

    repository_id: str
    window: TrendWindow
    step_seconds: int
    syncs: Annotated[list[SyncPoint], Meta(description="Oldest first, the last 2,000 at most")]
    lag: list[LagPoint]
    generated_at: datetime
