"""Trends for the operator: deliveries per step by outcome with latency percentiles, a
repository's sync durations, and the rescan lag, over a window (SPEC 9 and issue 20). Read
from the rollups of store/trends.py; the arithmetic is plain functions."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from psycopg import AsyncConnection

from docora.admin.models import DeliveryPoint, DeliveryTrend, LagPoint, RepositoryTrend, SyncPoint
from docora.errors import MalformedInput, NotFound
from docora.store import repositories, trends
from docora.store.repositories import Repository

# Window -> (step seconds, steps).
WINDOWS: dict[str, tuple[int, int]] = {"1h": (60, 60), "24h": (600, 144), "7d": (3600, 168)}
# Upper bounds (ms) of the latency buckets of docora_latency_bucket (migrations/0012).
LATENCY_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
SYNCS_SHOWN = 2000


def window_steps(window: str, now: datetime) -> tuple[int, list[datetime]]:
    """The step and the start of every step of `window`, the last one holding `now`;
    aligned on multiples of the step since the epoch, as the rollup queries are."""
    if window not in WINDOWS:
        raise MalformedInput(f"Invalid request: window must be among {', '.join(WINDOWS)}")
    step, count = WINDOWS[window]
    last = math.floor(now.timestamp() / step) * step
    return step, [datetime.fromtimestamp(last - step * i, UTC) for i in reversed(range(count))]


def percentile_ms(counts: list[int], q: float) -> int | None:
    """The q-quantile of a bucketed latency distribution, linear within its bucket; the
    open last bucket answers its lower bound (30 s). None when nothing was counted."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bucket, count in enumerate(counts):
        if count and seen + count >= rank:
            low = LATENCY_BOUNDS_MS[bucket - 1] if bucket else 0
            if bucket == len(LATENCY_BOUNDS_MS):
                return low
            high = LATENCY_BOUNDS_MS[bucket]
            return round(low + (high - low) * (rank - seen) / count)
        seen += count
    return LATENCY_BOUNDS_MS[-1]


def delivery_points(
    starts: list[datetime], rows: list[trends.BucketCount]
) -> tuple[list[DeliveryPoint], list[int]]:
    """One point per step (zeros where nothing was delivered), and the window's buckets."""
    by_step: dict[datetime, list[int]] = {}
    outcomes: dict[datetime, tuple[int, int]] = {}
    window_buckets = [0] * BUCKETS
    for row in rows:
        counts = by_step.setdefault(row.at, [0] * BUCKETS)
        attempts = row.delivered + row.failed
        counts[row.bucket] += attempts
        window_buckets[row.bucket] += attempts
        delivered, failed = outcomes.get(row.at, (0, 0))
        outcomes[row.at] = (delivered + row.delivered, failed + row.failed)
    points = []
    for start in starts:
        counts = by_step.get(start, [0] * BUCKETS)
        delivered, failed = outcomes.get(start, (0, 0))
        points.append(
            DeliveryPoint(
                at=start,
                delivered=delivered,
                failed=failed,
                p50_ms=percentile_ms(counts, 0.5),
                p95_ms=percentile_ms(counts, 0.95),
            )
        )
    return points, window_buckets


def lag_points(starts: list[datetime], rows: list[trends.CheckStep]) -> list[LagPoint]:
    found = {row.at: row for row in rows}
    return [
        LagPoint(
            at=start,
            checks=found[start].checks if start in found else 0,
            max_lag_seconds=round(found[start].max_lag_ms / 1000, 1) if start in found else 0.0,
        )
        for start in starts
    ]


async def delivery_trend(
    db: AsyncConnection, *, window: str, app_id: str | None, now: datetime | None = None
) -> DeliveryTrend:
    now = now or datetime.now(UTC)
    step, starts = window_steps(window, now)
    rows = await trends.delivery_steps(db, since=starts[0], step_s=step, app_id=app_id)
    points, buckets = delivery_points(starts, rows)
    return DeliveryTrend(
        window=window,  # type: ignore[arg-type]
        step_seconds=step,
        app_id=app_id,
        points=points,
        delivered=sum(p.delivered for p in points),
        failed=sum(p.failed for p in points),
        p50_ms=percentile_ms(buckets, 0.5),
        p95_ms=percentile_ms(buckets, 0.95),
        generated_at=now,
    )


async def existing_repository(db: AsyncConnection, repository_id: str) -> Repository:
    repository = await repositories.get_repository(db, repository_id)
    if repository is None:
        raise NotFound(f"No repository {repository_id}")
    return repository


async def repository_trend(
    db: AsyncConnection, *, repository: Repository, window: str, now: datetime | None = None
) -> RepositoryTrend:
    """`repository`: read by the caller, which shows it too (existing_repository)."""
    now = now or datetime.now(UTC)
    step, starts = window_steps(window, now)
    runs = await trends.sync_runs(
        db, repository_id=repository.id, since=starts[0], limit=SYNCS_SHOWN
    )
    checks = await trends.check_steps(db, since=starts[0], step_s=step)
    return RepositoryTrend(
        repository_id=repository.id,
        window=window,  # type: ignore[arg-type]
        step_seconds=step,
        syncs=[
            SyncPoint(
                finished_at=r.finished_at,
                duration_ms=r.duration_ms,
                outcome=r.outcome,  # type: ignore[arg-type]
                commit_sha=r.commit_sha,
            )
            for r in runs
        ],
        lag=lag_points(starts, checks),
        generated_at=now,
    )
