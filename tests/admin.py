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
