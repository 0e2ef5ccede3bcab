"""Helpers for operator API and console tests: a populated database without a worker."""

from __future__ import annotations

import re

import psycopg
from litestar.testing import TestClient

from docora.ids import repository_id
from tests.conftest import ADMIN_TOKEN, onboard

ADMIN_USER = "operator"
ADMIN_PASSWORD = "console-password-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def console_settings(make_settings, **extra: str):
    return make_settings(ADMIN_USERNAME=ADMIN_USER, ADMIN_PASSWORD=ADMIN_PASSWORD, **extra)


def https_client(app) -> TestClient:
    """The console's cookie is Secure except on loopback http; the test client is neither
    loopback nor plain, so it speaks https."""
    return TestClient(app, base_url="https://testserver.local")


def login(client: TestClient) -> str:
    """Log in through the form; return the session's CSRF token."""
    r = client.post(
        "/admin/login",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/admin/onboard").text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def add_repository(db: psycopg.Connection, name: str, *, cooldown: bool = False) -> str:
    """A repository row whose remote does not exist: a local path, so that a worker that
    syncs it fails at once without any network (never a name to resolve)."""
    url = f"file:///nonexistent/docora-tests/acme/{name}"
    rid = repository_id(url, "main")
    db.execute(
        "INSERT INTO repositories (id, url, host, owner, name, branch, is_private, cooldown_until,"
        " consecutive_failures) VALUES (%s, %s, 'local', 'acme', %s, 'main', false,"
        " CASE WHEN %s THEN now() + interval '1 hour' END, CASE WHEN %s THEN 5 ELSE 0 END)",
        (rid, url, name, cooldown, cooldown),
    )
    return rid


def add_watch(
    db: psycopg.Connection, app_id: str, rid: str, status: str = "synced", error: str | None = None
) -> None:
    db.execute(
        "INSERT INTO watches (app_id, repository_id, status, last_error, retry_count)"
        " VALUES (%s, %s, %s, %s, %s)",
        (app_id, rid, status, error, 3 if error else 0),
    )


def populate(client: TestClient, db: psycopg.Connection) -> dict:
    """Three apps, four repositories, watches in every status."""
    apps = {name: onboard(client, app_name=name)[0] for name in ("alpha", "bravo", "charlie")}
    repos = {
        name: add_repository(db, name, cooldown=name == "broken")
        for name in ("docs", "site", "broken", "shared")
    }
    add_watch(db, apps["alpha"], repos["docs"], "synced")
    add_watch(db, apps["alpha"], repos["broken"], "failed", "git auth: the host refused")
    add_watch(db, apps["alpha"], repos["shared"], "retrying", "delivery failed: HTTP 503")
    add_watch(db, apps["bravo"], repos["site"], "scanning")
    add_watch(db, apps["bravo"], repos["shared"], "pending_snapshot")
    return {"apps": apps, "repos": repos}


def add_history(
    db: psycopg.Connection, app_id: str, rid: str, *, minutes: int, per_minute: int = 3
) -> None:
    """Delivery-log rows over the last `minutes` (every seventh failed, latencies from 20
    to 2,000 ms) and the per-minute rollups the recorder would have kept with them."""
    db.execute(
        """
        WITH logged AS (
            INSERT INTO deliveries (app_id, repository_id, delivery_id, event, path, status,
                                    status_code, latency_ms, error, created_at)
            SELECT %(app)s, %(rid)s, gen_random_uuid(),
                   (ARRAY['create', 'update', 'delete'])[1 + i %% 3],
                   'docs/page-' || i || '-' || j || '.md',
                   CASE WHEN (i + j) %% 7 = 0 THEN 'failed' ELSE 'delivered' END,
                   CASE WHEN (i + j) %% 7 = 0 THEN 503 ELSE 200 END,
                   20 + ((i * 37 + j * 11) %% 100) * (1 + (i %% 20)),
                   CASE WHEN (i + j) %% 7 = 0 THEN 'HTTP 503' END,
                   now() - i * interval '1 minute' - j * interval '1 second'
            FROM generate_series(0, %(minutes)s - 1) i, generate_series(1, %(per)s) j
            ORDER BY i DESC, j DESC  -- oldest first, as the log's ids grow with time
            RETURNING created_at, latency_ms, status
        )
        INSERT INTO delivery_minutes AS m (minute, app_id, bucket, delivered, failed)
        SELECT date_trunc('minute', created_at), %(app)s, docora_latency_bucket(latency_ms),
               count(*) FILTER (WHERE status = 'delivered'),
               count(*) FILTER (WHERE status = 'failed')
        FROM logged GROUP BY 1, 3
        ON CONFLICT (minute, app_id, bucket) DO UPDATE
        SET delivered = m.delivered + EXCLUDED.delivered, failed = m.failed + EXCLUDED.failed
        """,
        {"app": app_id, "rid": rid, "minutes": minutes, "per": per_minute},
    )


def add_sync_history(db: psycopg.Connection, rid: str, *, hours: int) -> None:
    """A sync every 20 minutes over the last `hours` (one in nine failed), and the rescan
    checks of every minute with a lag that grows and recovers."""
    db.execute(
        "INSERT INTO sync_runs (repository_id, finished_at, duration_ms, outcome, commit_sha)"
        " SELECT %(rid)s, now() - i * interval '20 minutes', 300 + (i * 53) %% 900,"
        " CASE WHEN i %% 9 = 4 THEN 'failed' WHEN i %% 3 = 0 THEN 'synced' ELSE 'unchanged' END,"
        " CASE WHEN i %% 9 = 4 THEN NULL ELSE md5(i::text) || 'abcdef01' END"
        " FROM generate_series(0, %(n)s) i",
        {"rid": rid, "n": hours * 3},
    )
    db.execute(
        "INSERT INTO check_minutes (minute, unchanged, changed, failed, max_lag_ms)"
        " SELECT date_trunc('minute', now()) - i * interval '1 minute', 40, i %% 3, 0,"
        " CASE WHEN i %% 240 BETWEEN 100 AND 130 THEN (i %% 240 - 99) * 2000 ELSE 300 END"
        " FROM generate_series(0, %(n)s) i ON CONFLICT (minute) DO NOTHING",
        {"n": hours * 60},
    )
