"""What the console's charts cost with a large delivery log (issue 20):

    python bench/trends.py [--rows 1000000] [--apps 20]

A throwaway embedded Postgres is filled with `--rows` delivery-log rows spread
over the last 24 hours across `--apps` apps, with the per-minute rollups the recorder keeps
beside them (built by the backfill statement of migrations/0012, the same aggregate the
recording statements apply row by row), a day of rescan checks and syncs. Then it prints:

- the chart series read from the rollups, as the operator API serves them (store and
  arithmetic, in-process), for each window, across apps and for one app;
- the same 24-hour series computed from the log itself (counts and percentile_cont), the
  alternative the rollups replace;
- `GET /api/admin/trends/deliveries` and the console's overview page from a separate
  `docora api` process, as an operator's browser meets them;
- what keeping the rollup costs a delivery: the recording statement of 32 acknowledged
  events, with and without its rollup CTE.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ADMIN, free_port, service_environment, wait_http
from docora.admin import trends as admin_trends
from docora.db import embedded_postgres
from docora.migrate import apply_migrations
from docora.store import changes
from docora.store.changes import Change, LogEntry

MIGRATION = Path(__file__).resolve().parents[1] / "migrations" / "0012.trends.sql"
RUNS = 20


def backfill_statement() -> str:
    """The migration's own backfill, so the bench builds the rollups exactly as an upgrade
    does (and as the recorder would have, a row at a time)."""
    text = MIGRATION.read_text()
    return text[text.index("INSERT INTO delivery_minutes") :].rstrip().rstrip(";")


def fill(db: psycopg.Connection, rows: int, apps: int) -> str:
    app_ids = [f"app_{i:024x}" for i in range(apps)]
    repo_ids = [f"repo_{i:024x}" for i in range(apps)]
    for app_id, rid in zip(app_ids, repo_ids, strict=True):
        db.execute(
            "INSERT INTO apps (id, name, base_url, email, token_digest, client_auth_key_enc)"
            " VALUES (%s, %s, 'https://h.example', 'a@example.com', sha256(%s::bytea), '\\x00')",
            (app_id, f"bench app {app_id[-4:]}", app_id),
        )
        db.execute(
            "INSERT INTO repositories (id, url, host, owner, name, branch) VALUES"
            " (%s, 'https://git.example/o/' || %s, 'git.example', 'o', %s, 'main')",
            (rid, rid, rid),
        )
        db.execute("INSERT INTO watches (app_id, repository_id) VALUES (%s, %s)", (app_id, rid))
    started = time.perf_counter()
    db.execute(
        """
        INSERT INTO deliveries (app_id, repository_id, delivery_id, event, path, sha, commit_sha,
                                status, status_code, latency_ms, attempt, error, created_at)
        SELECT 'app_' || lpad(to_hex(i %% %(apps)s), 24, '0'),
               'repo_' || lpad(to_hex(i %% %(apps)s), 24, '0'),
               gen_random_uuid(), 'create', 'docs/file-' || i || '.md', md5(i::text),
               'c0ffee', CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'delivered' END,
               CASE WHEN i %% 50 = 0 THEN 503 ELSE 200 END,
               (5 + (i::bigint * 7919) %% 400)::int, 1, NULL,
               now() - (i::float8 / %(rows)s) * interval '24 hours'
        FROM generate_series(1, %(rows)s) i
        """,
        {"rows": rows, "apps": apps},
    )
    logged = time.perf_counter() - started
    started = time.perf_counter()
    db.execute(backfill_statement())
    rolled = time.perf_counter() - started
    db.execute(
        "INSERT INTO check_minutes (minute, unchanged, changed, failed, max_lag_ms)"
        " SELECT date_trunc('minute', now()) - i * interval '1 minute', 900, 3, 0, 250"
        " FROM generate_series(0, 1439) i"
    )
    db.execute(
        "INSERT INTO sync_runs (repository_id, finished_at, duration_ms, outcome)"
        " SELECT %s, now() - i * interval '5 minutes', 400 + i, 'synced'"
        " FROM generate_series(0, 287) i",
        (repo_ids[0],),
    )
    db.execute("ANALYZE")
    minutes = db.execute("SELECT count(*) FROM delivery_minutes").fetchone()[0]
    print(
        f"filled: {rows:,} log rows in {logged:.1f} s; {minutes:,} rollup rows built in "
        f"{rolled:.1f} s",
        flush=True,
    )
    return app_ids[0]


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms (p95 {sorted(samples)[-2] * 1000:.1f})"


async def timed(make) -> list[float]:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await make()
        samples.append(time.perf_counter() - started)
    return samples


LOG_SERIES = """
SELECT date_bin(interval '10 minutes', created_at, 'epoch') AS at,
       count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'failed'),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
FROM deliveries WHERE created_at >= now() - interval '24 hours'{app}
GROUP BY 1 ORDER BY 1
"""


async def queries(url: str, app_id: str) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        for window in ("1h", "24h", "7d"):
            samples = await timed(
                lambda w=window: admin_trends.delivery_trend(db, window=w, app_id=None)
            )
            print(f"  trend from rollups, all apps, {window}: {median_ms(samples)}", flush=True)
        samples = await timed(lambda: admin_trends.delivery_trend(db, window="24h", app_id=app_id))
        print(f"  trend from rollups, one app, 24h: {median_ms(samples)}", flush=True)
        rid = "repo_" + app_id[4:]

        async def repository_read() -> None:  # what the API's route does
            repository = await admin_trends.existing_repository(db, rid)
            await admin_trends.repository_trend(db, repository=repository, window="24h")

        samples = await timed(repository_read)
        print(f"  repository trend (syncs, lag), 24h: {median_ms(samples)}", flush=True)
        for label, extra in (("all apps", ""), ("one app", f" AND app_id = '{app_id}'")):
            sql = LOG_SERIES.format(app=extra)

            async def from_log(sql=sql):
                cur = await db.execute(sql)
                await cur.fetchall()

            samples = await timed(from_log)
            print(f"  same 24h series from the log, {label}: {median_ms(samples)}", flush=True)


def over_http(url: str, root: Path) -> None:
    port = free_port()
    env = service_environment(
        root, url, port, ADMIN_USERNAME="bench", ADMIN_PASSWORD="bench-password-1"
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "docora", "api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health")
        with httpx.Client(base_url=base, timeout=60) as client:
            headers = {"Authorization": f"Bearer {ADMIN}"}
            for window in ("1h", "24h"):
                samples = []
                for _ in range(RUNS):
                    started = time.perf_counter()
                    r = client.get(f"/api/admin/trends/deliveries?window={window}", headers=headers)
                    samples.append(time.perf_counter() - started)
                    assert r.status_code == 200, r.text
                print(f"  GET /api/admin/trends/deliveries?window={window}: {median_ms(samples)}")
            login = client.post(
                "/admin/login",
                data={"username": "bench", "password": "bench-password-1"},
                follow_redirects=False,
            )
            assert login.status_code == 303, login.text
            for window in ("1h", "24h"):
                samples = []
                for _ in range(RUNS):
                    started = time.perf_counter()
                    page = client.get(f"/admin/?window={window}")
                    samples.append(time.perf_counter() - started)
                    assert page.status_code == 200 and "<svg" in page.text
                print(f"  GET /admin/?window={window} (the overview page): {median_ms(samples)}")
    finally:
        api.terminate()
        api.wait(30)


def without_rollup(sql: str) -> str:
    return re.sub(r", minutes AS \(.*?\)\nSELECT", "\nSELECT", sql, flags=re.S)


async def recording_cost(url: str, app_id: str, batches: int = 300) -> None:
    rid = "repo_" + app_id[4:]
    shipped = changes.RECORD_ACKNOWLEDGED
    variants = {"with the rollup": shipped, "without it": without_rollup(shipped)}
    assert variants["without it"] != shipped and "delivery_minutes" not in variants["without it"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        for label, sql in variants.items():
            changes.RECORD_ACKNOWLEDGED = sql
            samples = []
            for b in range(batches):
                batch = [
                    (
                        Change("create", f"{label}/{b}/{i}", "s", 1, "blob", False, None),
                        LogEntry(
                            app_id,
                            rid,
                            uuid.uuid4(),
                            "create",
                            f"{label}/{b}/{i}",
                            "s",
                            "c",
                            "delivered",
                            200,
                            5 + i * 13,
                            1,
                        ),
                    )
                    for i in range(32)
                ]
                started = time.perf_counter()
                await changes.record_acknowledged(db, batch, generation=0)
                samples.append(time.perf_counter() - started)
            print(f"  recording 32 acknowledged events, {label}: {median_ms(samples)}")
    changes.RECORD_ACKNOWLEDGED = shipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--apps", type=int, default=20)
    args = parser.parse_args()
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="docora-trends-")))
        # Always a throwaway server: a million rows are not for anyone's own database.
        url = stack.enter_context(embedded_postgres(root / "pg", keep=False))
        apply_migrations(url)
        with psycopg.connect(url, autocommit=True) as db:
            app_id = fill(db, args.rows, args.apps)
        print(f"queries, median of {RUNS} (warm):", flush=True)
        asyncio.run(queries(url, app_id))
        over_http(url, root)
        asyncio.run(recording_cost(url, app_id))


if __name__ == "__main__":
    main()
