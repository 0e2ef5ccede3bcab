"""Screenshots of the console's main pages for docs/console.md:

    python -m tests.console_screenshots docs/console

An embedded Postgres, the API on loopback, a worker, a few apps in every state, and
Debian's Chromium at 1440 and 390 px wide."""

from __future__ import annotations

import secrets
import sys
import tempfile
from pathlib import Path

import httpx
import procrastinate
import psycopg

from docora.config import load_settings
from docora.db import embedded_postgres
from docora.migrate import apply_migrations
from docora.scan.filters import compile_filter
from tests.admin import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    add_history,
    add_repository,
    add_sync_history,
    add_watch,
)
from tests.browser import CHROMIUM_ARGS, chromium, live_api
from tests.conftest import ADMIN_TOKEN
from tests.worker import BackgroundWorker

PAGES = {
    "overview": "/admin/",
    "failures": "/admin/failures",
    "apps": "/admin/apps?sort=failed&order=desc",
    "deliveries": "/admin/deliveries",
    "queue": "/admin/queue",
}


def populate(site: str, url: str) -> tuple[str, str]:
    with httpx.Client(base_url=site, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as api:
        apps = [
            api.post(
                "/api/apps/onboard",
                json={
                    "app_name": name,
                    "base_url": f"http://127.0.0.1:9/{name}",
                    "email": f"ops@{name}.example",
                    "client_auth_key": "signing-key-0123456789",
                    "delivery_mode": "batch" if name == "docs-search" else "single",
                },
            ).json()["app_id"]
            for name in ("handbook-site", "docs-search", "release-notes")
        ]
    with psycopg.connect(url, autocommit=True) as db:
        errors = [
            "git auth: the host refused the credentials (token missing, wrong, expired or revoked)",
            "delivery failed: create guides/setup.md: HTTP 503",
            "delivery failed: update README.md: timed out after 30000 ms",
        ]
        for i, name in enumerate(("handbook", "api-docs", "changelog", "website", "design")):
            rid = add_repository(db, name)
            add_watch(db, apps[0], rid, "synced")
            if i < 3:
                add_watch(db, apps[1], rid, "failed" if i == 0 else "retrying", errors[i])
            add_watch(db, apps[2], rid, "synced" if i % 2 else "pending_snapshot")
        # One watch with a path filter, as the API would store it.
        docs_only = compile_filter(["docs/**", "!docs/drafts/**"])
        db.execute(
            "UPDATE watches SET paths = %s, path_regexes = %s, path_includes = %s"
            " WHERE app_id = %s AND status = 'retrying'",
            (docs_only.paths, docs_only.path_regexes, docs_only.path_includes, apps[1]),
        )
        rids = [r[0] for r in db.execute("SELECT id FROM repositories ORDER BY id").fetchall()]
        for app_id in apps:
            add_history(db, app_id, rids[0], minutes=24 * 60, per_minute=2)
        add_sync_history(db, rids[0], hours=24)
    # Deliveries waiting for their retry (an hour away, so the worker leaves them be): the
    # queue page names the app each is for.
    jobs = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))
    with jobs.open():
        for app_id, rid in zip(apps, rids, strict=False):
            jobs.configure_task("docora.deliver_watch", schedule_in={"hours": 1}).defer(
                app_id=app_id, repository_id=rid
            )
    return apps[1], rids[0]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory() as tmp,
        embedded_postgres(Path(tmp) / "pg", keep=False) as url,
    ):
        apply_migrations(url)
        settings = load_settings(
            {
                "DATABASE_URL": url,
                "ENCRYPTION_KEY": secrets.token_hex(32),
                "ADMIN_TOKEN": ADMIN_TOKEN,
                "ADMIN_USERNAME": ADMIN_USER,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
                "ALLOW_LOCAL_REPOSITORIES": "true",
                "REPOS_BASE_PATH": str(Path(tmp) / "repos"),
                "SCAN_INTERVAL_MS": "3600000",
            }
        )
        with live_api(settings) as site, BackgroundWorker(settings), sync_playwright() as p:
            failing_app, repository = populate(site, url)
            browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
            for width in (1440, 390):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(f"{site}/admin/login")
                page.get_by_label("Username").fill(ADMIN_USER)
                page.get_by_label("Password").fill(ADMIN_PASSWORD)
                page.get_by_role("button", name="Log in").click()
                page.wait_for_load_state("networkidle")
                pages = {
                    **PAGES,
                    "app": f"/admin/apps/{failing_app}",
                    "repository": f"/admin/repositories/{repository}",
                }
                if width < 1000:  # the phone-sized view of the pages used most
                    pages = {k: pages[k] for k in ("overview", "app", "repository")}
                for name, path in pages.items():
                    page.goto(f"{site}{path}")
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out / f"{name}-{width}.png"), full_page=width == 390)
                page.close()
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console"))
