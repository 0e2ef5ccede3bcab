"""Every operator list reads an index, at 10,000 apps and 100,000 watches (plans and timings
are printed; docs/performance.md quotes them)."""

from __future__ import annotations

import time

import psycopg
import pytest

from docora.store import apps, deliveries, queue, stats, watches
from docora.store.sql import where

pytestmark = pytest.mark.slow

APPS, REPOSITORIES, WATCHES_PER_APP = 10_000, 10_000, 10


def populate(db: psycopg.Connection) -> None:
    db.execute(
        "INSERT INTO apps (id, name, base_url, email, token_digest, client_auth_key_enc)"
        " SELECT 'app_' || lpad(to_hex(i), 24, '0'), 'app ' || i, 'https://h.example/' || i,"
        "  'a' || i || '@example.com', sha256(i::text::bytea), '\\x00'"
        " FROM generate_series(1, %s) i",
        (APPS,),
    )
    db.execute(
        "INSERT INTO repositories (id, url, host, owner, name, branch)"
        " SELECT 'repo_' || lpad(to_hex(i), 24, '0'), 'https://git.example/o/r' || i,"
        "  'git.example', 'o', 'r' || i, 'main' FROM generate_series(1, %s) i",
        (REPOSITORIES,),
    )
    db.execute(
        "INSERT INTO watches (app_id, repository_id, status, last_error)"
        " SELECT 'app_' || lpad(to_hex(a), 24, '0'),"
        "  'repo_' || lpad(to_hex(1 + (a * 7 + k * 997) %% %s), 24, '0'),"
        "  (ARRAY['synced','synced','synced','synced','synced','synced','scanning',"
        "         'pending_snapshot','retrying','failed'])[1 + (a + k) %% 10],"
        "  CASE WHEN (a + k) %% 10 = 9 THEN 'git auth: refused' END"
        " FROM generate_series(1, %s) a, generate_series(1, %s) k"
        " ON CONFLICT DO NOTHING",
        (REPOSITORIES, APPS, WATCHES_PER_APP),
    )
    db.execute(
        "INSERT INTO deliveries (app_id, repository_id, delivery_id, event, status, created_at)"
        " SELECT w.app_id, w.repository_id, gen_random_uuid(), 'create',"
        "  CASE WHEN random() < 0.05 THEN 'failed' ELSE 'delivered' END,"
        "  now() - random() * interval '2 days'"
        " FROM watches w, generate_series(1, 2)"
    )
    # A queue's history: 100,000 finished jobs (purged after 72 h in production).
    db.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
        " SELECT 'default', 'docora.deliver_watch', '{}',"
        "  (CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'succeeded' END)::procrastinate_job_status"
        " FROM generate_series(1, 100000) i"
    )
    db.execute("VACUUM ANALYZE")  # as autovacuum leaves a table: visibility map set


def plan(db: psycopg.Connection, sql: str, params) -> tuple[str, float]:
    # psycopg binds client-side for EXPLAIN text: run the statement as the service would.
    rows = db.execute("EXPLAIN (ANALYZE, FORMAT TEXT) " + sql, params).fetchall()
    text = "\n".join(r[0] for r in rows)
    started = time.perf_counter()
    db.execute(sql, params).fetchall()
    return text, (time.perf_counter() - started) * 1000


def no_seq_scan_on(text: str, *tables: str) -> bool:
    return not any(f"Seq Scan on {t} " in text or text.endswith(f"Seq Scan on {t}") for t in tables)


def test_operator_lists_use_their_indexes(db):
    populate(db)
    count = db.execute("SELECT count(*) FROM watches").fetchone()[0]
    assert count >= 90_000
    app_id = db.execute("SELECT app_id FROM watches LIMIT 1").fetchone()[0]
    base = {"pattern": None, "search": None, "after_value": None, "after_id": None, "limit": 51}
    watch_params = {
        "statuses": None,
        "app_id": None,
        "repository_id": None,
        "pattern": None,
        "search": None,
        "after_status": None,
        "after_app": None,
        "after_repository": None,
        "limit": 51,
    }

    def watch_sql(**given):
        return watches.ADMIN_WATCHES.replace(
            "{conditions}", where(watches.ADMIN_WATCH_FILTERS, given)
        )

    def delivery_sql(**given):
        conditions = [sql for name, sql in deliveries.ADMIN_FILTERS.items() if given.get(name)]
        return deliveries.ADMIN_PAGE.replace("{conditions}", " AND ".join(conditions) or "true")

    page = apps._app_page_sql
    no_deliveries_filter = {**dict.fromkeys(deliveries.ADMIN_FILTERS), "limit": 51}
    next_watch = {"after_status": "retrying", "after_app": app_id, "after_repository": ""}
    cases = {
        "apps by name": (page("app_name", False, after=False, search=False), base, "apps"),
        "apps by name, next page": (
            page("app_name", False, after=True, search=False),
            {**base, "after_value": "app 5000", "after_id": "app_x"},
            "apps",
        ),
        "apps by age, newest": (page("created_at", True, after=False, search=False), base, "apps"),
        "failed watches": (
            watch_sql(statuses=1),
            {**watch_params, "statuses": ["failed"]},
            "watches",
        ),
        "an app's watches": (watch_sql(app_id=1), {**watch_params, "app_id": app_id}, "watches"),
        "all watches, failing first": (watch_sql(), watch_params, "watches"),
        "watches, next page": (watch_sql(after=1), {**watch_params, **next_watch}, "watches"),
        "delivery log": (delivery_sql(), no_deliveries_filter, "deliveries"),
        "an app's deliveries": (
            delivery_sql(app_id=1),
            {**no_deliveries_filter, "app_id": app_id},
            "deliveries",
        ),
        "queue page": (
            queue.PAGE.replace("{conditions}", "true"),
            {**dict.fromkeys(queue.FILTERS), "limit": 51},
            "procrastinate_jobs",
        ),
    }
    report = []
    for name, (sql, params, table) in cases.items():
        text, ms = plan(db, sql, params)
        report.append(f"{name}: {ms:.1f} ms")
        assert no_seq_scan_on(text, table), f"{name} scans a whole table:\n{text}"
        assert ms < 250, f"{name} took {ms:.0f} ms:\n{text}"
    # Sorting by failed watches orders every app by a count: no index can, so it is timed.
    _, ms = plan(db, page("failed", True, after=False, search=False), base)
    report.append(f"apps by failed watches (counted, not indexed): {ms:.1f} ms")
    assert ms < 250
    text, ms = plan(
        db,
        stats.OVERVIEW,
        {"gone_after": 4, "stalled_after": 60},
    )
    report.append(f"overview: {ms:.1f} ms")
    # Counting every watch by status reads them all (Postgres picks a sequential read as the
    # cheapest way); the log, which grows without bound, is read through its time index.
    assert no_seq_scan_on(text, "deliveries", "procrastinate_jobs"), text
    assert ms < 100, text
    print("\n".join(report))


async def test_a_metrics_scrape_at_100k_watches_is_quick(db, database_url):
    """The state /metrics reads at scrape time: under 50 ms with 100,000 watches."""
    import psycopg as pg

    from docora.store import stats as state

    populate(db)
    async with await pg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            await state.overview(conn, gone_after_s=4, stalled_after_s=60)
            await state.delivery_totals(conn)
            await state.oldest_todo_seconds(conn)
            timings.append((time.perf_counter() - started) * 1000)
    best = min(timings)
    print(f"metrics scrape (state): best {best:.1f} ms, worst {max(timings):.1f} ms of 5")
    assert best < 50
