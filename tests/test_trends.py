"""Trends behind the console's charts: the arithmetic (percentiles from latency buckets,
aligned steps, zero-filled points, the SVG), the rollups written in the same transaction
as the delivery log, the checker's and the syncs' rows, retention, and the operator API's
series against the delivery log of a real sync."""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from docora.admin import trends as admin_trends
from docora.admin.models import DeliveryPoint, DeliveryTrend
from docora.admin.trends import LATENCY_BOUNDS_MS, percentile_ms, window_steps
from docora.console import charts
from docora.errors import MalformedInput
from docora.store import changes, checks, trends
from docora.store.changes import Change, LogEntry
from tests.admin import ADMIN
from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_synced, watch
from tests.gitrepo import GitRepo
from tests.pg import insert_watch

APP, REPO = "app_" + "1" * 24, "repo_" + "1" * 24


def _counts(**by_bucket: int) -> list[int]:
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for bucket, n in by_bucket.items():
        counts[int(bucket[1:])] = n
    return counts


# --- the arithmetic ----------------------------------------------------------------------


def test_percentiles_from_buckets():
    assert percentile_ms(_counts(), 0.5) is None
    # Ten attempts in [100, 250) ms: the median halfway through, p95 near its top.
    assert percentile_ms(_counts(b5=10), 0.5) == 175
    assert percentile_ms(_counts(b5=10), 0.95) == 242
    # Nine fast ones and one very slow one: p50 fast, p95 in the slow one's bucket.
    spread = _counts(b1=9, b9=1)
    assert percentile_ms(spread, 0.5) <= 10 and 2500 <= percentile_ms(spread, 0.95) <= 5000
    # The open last bucket (30 s or more) answers its lower bound.
    assert percentile_ms(_counts(b12=3), 0.95) == 30000
    assert percentile_ms(_counts(b0=1), 0.5) == 2


def test_windows_are_aligned_steps_ending_now():
    now = datetime(2026, 12, 7, 13, 47, 31, tzinfo=UTC)
    step, starts = window_steps("1h", now)
    assert step == 60 and len(starts) == 60
    assert starts[-1] == datetime(2026, 12, 7, 13, 47, tzinfo=UTC)
    assert starts[0] == starts[-1] - timedelta(minutes=59)
    step, starts = window_steps("24h", now)
    assert step == 600 and len(starts) == 144 and starts[-1].minute == 40
    step, starts = window_steps("7d", now)
    assert step == 3600 and len(starts) == 168 and starts[-1].hour == 13
    with pytest.raises(MalformedInput, match="window"):
        window_steps("1y", now)


def test_points_are_zero_filled_and_sum_up():
    now = datetime(2026, 12, 7, 13, 47, 31, tzinfo=UTC)
    _, starts = window_steps("1h", now)
    rows = [
        trends.BucketCount(starts[3], 2, delivered=4, failed=0),
        trends.BucketCount(starts[3], 7, delivered=1, failed=1),
        trends.BucketCount(starts[-1], 0, delivered=0, failed=2),
    ]
    points, window_buckets = admin_trends.delivery_points(starts, rows)
    assert len(points) == 60 and sum(window_buckets) == 8
    assert points[3].delivered == 5 and points[3].failed == 1
    assert points[3].p50_ms is not None and 10 <= points[3].p50_ms < 25
    assert points[4] == DeliveryPoint(starts[4], 0, 0, None, None)
    assert points[-1].failed == 2 and points[-1].p95_ms == 5


def _trend(points: list[DeliveryPoint]) -> DeliveryTrend:
    return DeliveryTrend(
        window="1h",
        step_seconds=60,
        app_id=None,
        points=points,
        delivered=sum(p.delivered for p in points),
        failed=sum(p.failed for p in points),
        p50_ms=40,
        p95_ms=90,
        generated_at=datetime.now(UTC),
    )


def test_charts_are_well_formed_svg_with_a_text_alternative():
    _, starts = window_steps("1h", datetime.now(UTC))
    points = [
        DeliveryPoint(s, i % 5, i % 2, 30 + i, None if i % 7 else 90) for i, s in enumerate(starts)
    ]
    counts, latency = charts.delivery_charts(_trend(points), "t")
    for chart in (counts, latency):
        svg = ET.fromstring(str(chart.svg))  # well-formed XML
        assert svg.get("role") == "img" and svg.find("{*}title") is not None
        assert "style=" not in str(chart.svg)  # the console's CSP allows no inline style
        assert len(chart.rows) == 60
    assert counts.rows[7] == [starts[7].strftime("%H:%M"), "2", "1"]
    assert counts.summary == "120 delivered and 30 failed in the last hour."
    assert counts.y_max == "5"  # the tallest bar (4 + 1), a round number itself
    bars = ET.fromstring(str(counts.svg)).findall("{*}rect")
    assert len(bars) == sum(1 for p in points if p.delivered) + sum(1 for p in points if p.failed)
    # A missing percentile breaks the line: p95 exists in 9 separate steps.
    lines = ET.fromstring(str(latency.svg)).findall("{*}polyline")
    assert len([x for x in lines if x.get("class") == "p95"]) == 9
    assert latency.rows[0][2] == "90" and latency.rows[1][2] == "—"


def test_nice_ceilings():
    assert [charts.nice_ceiling(v) for v in (0, 1, 3, 7, 12, 250, 999, 1001)] == [
        1,
        1,
        5,
        10,
        20,
        500,
        1000,
        2000,
    ]


# --- the rollups -------------------------------------------------------------------------


def _entry(status: str, latency_ms: int, path: str) -> LogEntry:
    return LogEntry(
        APP,
        REPO,
        uuid.uuid4(),
        "create",
        path,
        "s",
        "c1",
        status,
        200,
        latency_ms,
        1,
        None if status == "delivered" else "HTTP 500",
    )


async def _record(url: str, batch, *, commit: bool) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        if commit:
            await changes.record_acknowledged(conn, batch, generation=0)
            return
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await changes.record_acknowledged(conn, batch, generation=0)
                raise RuntimeError("the transaction rolls back")


def _minutes(db) -> dict[int, tuple[int, int]]:
    rows = db.execute(
        "SELECT bucket, delivered, failed FROM delivery_minutes WHERE app_id = %s", (APP,)
    ).fetchall()
    return {bucket: (delivered, failed) for bucket, delivered, failed in rows}


def test_the_rollup_is_written_with_the_log_rows_or_not_at_all(db, database_url):
    insert_watch(db, APP, REPO)
    batch = [
        (Change("create", f"f{i}", "s", 1, "b", False, None), _entry("delivered", ms, f"f{i}"))
        for i, ms in enumerate((3, 40, 45, 700))
    ]
    asyncio.run(_record(database_url, batch, commit=False))
    assert _minutes(db) == {} and db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
    asyncio.run(_record(database_url, batch, commit=True))
    assert _minutes(db) == {0: (1, 0), 3: (2, 0), 7: (1, 0)}

    async def failed_attempt() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await changes.log_attempt(conn, _entry("failed", 30001, "f9"))

    asyncio.run(failed_attempt())
    assert _minutes(db)[12] == (0, 1)
    # Every log row is counted once: the rollup and the log agree by bucket.
    by_log = db.execute(
        "SELECT docora_latency_bucket(latency_ms), count(*) FILTER (WHERE status = 'delivered'),"
        " count(*) FILTER (WHERE status = 'failed') FROM deliveries GROUP BY 1"
    ).fetchall()
    assert {b: (d, f) for b, d, f in by_log} == _minutes(db)


def test_checker_batches_and_retention(db, database_url):
    insert_watch(db, APP, REPO)

    async def run() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for lag in (1.5, 7.25):
                await checks.record_batch(
                    conn,
                    unchanged=[REPO],
                    closing=[],
                    counts={"unchanged": 3, "changed": 1},
                    interval_ms=60_000,
                    max_lag_s=lag,
                )
            await trends.record_sync(
                conn, repository_id=REPO, duration_ms=812, outcome="synced", commit_sha="c1"
            )
            await trends.record_sync(
                conn,
                repository_id="repo_" + "9" * 24,
                duration_ms=1,
                outcome="failed",
                commit_sha=None,
            )  # a repository deleted meanwhile: nothing recorded
            return await trends.prune(conn, days=14)

    assert asyncio.run(run()) == 0
    assert db.execute(
        "SELECT unchanged, changed, failed, max_lag_ms FROM check_minutes"
    ).fetchall() == [(6, 2, 0, 7250)]
    assert db.execute("SELECT repository_id, duration_ms FROM sync_runs").fetchall() == [
        (REPO, 812)
    ]
    # Each table gets a row past the retention.
    db.execute("UPDATE check_minutes SET minute = minute - interval '15 days'")
    db.execute("UPDATE sync_runs SET finished_at = finished_at - interval '15 days'")
    db.execute(
        "INSERT INTO delivery_minutes VALUES (now() - interval '15 days', %s, 1, 1, 0)", (APP,)
    )

    async def prune() -> int:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await trends.prune(conn, days=14)

    assert asyncio.run(prune()) == 3
    for table in ("check_minutes", "sync_runs", "delivery_minutes"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


# --- the series of a real sync -----------------------------------------------------------


def test_the_series_count_what_the_log_holds(client, worker, receiver, db, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {f"f{i}.txt": str(i) for i in range(6)})
    receiver.fail_first(2)
    app_id, headers = onboard(
        client,
        app_name="Trend Watcher",
        base_url=receiver.base_url,
        client_auth_key=RECEIVER_KEY,
    )
    rid = watch(client, headers, repo.url)
    wait_synced(client, headers, rid, repo.head(), timeout=60)
    logged = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall())
    assert logged == {"delivered": 6, "failed": 2}
    for query in ("", f"&app_id={app_id}"):
        trend = client.get(f"/api/admin/trends/deliveries?window=1h{query}", headers=ADMIN).json()
        assert (trend["delivered"], trend["failed"]) == (6, 2)
        assert sum(p["delivered"] for p in trend["points"]) == 6
        assert trend["p50_ms"] is not None and len(trend["points"]) == 60
    other = client.get(
        "/api/admin/trends/deliveries?window=24h&app_id=app_" + "f" * 24, headers=ADMIN
    ).json()
    assert (other["delivered"], other["failed"], other["p50_ms"]) == (0, 0, None)
    repository = client.get(f"/api/admin/trends/repositories/{rid}", headers=ADMIN).json()
    assert [s["outcome"] for s in repository["syncs"]] == ["synced"]
    assert repository["syncs"][0]["commit_sha"] == repo.head() and len(repository["lag"]) == 144
    assert client.get("/api/admin/trends/deliveries?window=2h", headers=ADMIN).status_code == 400
    missing = client.get(f"/api/admin/trends/repositories/repo_{'0' * 24}", headers=ADMIN)
    assert missing.status_code == 404

    # The app's name finds its deliveries and its jobs, in any case, or by a part of it.
    for app in ("trend watcher", "Watch", app_id):
        page = client.get(f"/api/admin/deliveries?app={app}", headers=ADMIN).json()["items"]
        assert len(page) == 8 and {d["app_name"] for d in page} == {"Trend Watcher"}
    assert client.get("/api/admin/deliveries?app=nobody", headers=ADMIN).json()["items"] == []
    jobs = client.get("/api/admin/queue?app=TREND WATCHER", headers=ADMIN).json()["items"]
    assert jobs and {j["app_name"] for j in jobs} == {"Trend Watcher"}
    assert {j["task"] for j in jobs} == {"docora.deliver_watch"}
    watches = client.get("/api/admin/watches?app=trend", headers=ADMIN).json()["items"]
    assert [w["app_name"] for w in watches] == ["Trend Watcher"]
