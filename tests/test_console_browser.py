"""The console as an operator uses it, in headless Chromium against the real service."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.admin import (
    ADMIN,
    ADMIN_PASSWORD,
    ADMIN_USER,
    add_repository,
    add_watch,
    console_settings,
)
from tests.browser import CHROMIUM_ARGS, chromium, live_api
from tests.waiting import wait_until
from tests.worker import BackgroundWorker

pytestmark = pytest.mark.slow
PAGES = [
    "/admin/",
    "/admin/failures",
    "/admin/apps",
    "/admin/deliveries",
    "/admin/queue",
    "/admin/workers",
    "/admin/onboard",
]


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, site):
    """A page signed in to the console (ask for `data` first when the test wants it shown)."""
    signed_in = browser.new_page()
    login(signed_in, site)
    yield signed_in
    signed_in.close()


@pytest.fixture
def settings(make_settings):
    return console_settings(make_settings)


@pytest.fixture
def site(settings):
    with live_api(settings) as base:
        yield base


@pytest.fixture
def data(site, db):
    """Two apps; alpha has a failed, a retrying and a synced watch."""
    with httpx.Client(base_url=site, headers=ADMIN) as api:
        apps = {}
        for name in ("alpha", "bravo"):
            r = api.post(
                "/api/apps/onboard",
                json={
                    "app_name": name,
                    "base_url": "http://127.0.0.1:9/hooks",
                    "email": f"{name}@example.com",
                    "client_auth_key": "signing-key-0123456789",
                },
            )
            apps[name] = r.json()["app_id"]
    repos = {name: add_repository(db, name) for name in ("docs", "site", "blog")}
    add_watch(
        db, apps["alpha"], repos["docs"], "failed", "git auth: the host refused the credentials"
    )
    add_watch(
        db, apps["alpha"], repos["site"], "retrying", "delivery failed: create a.txt: HTTP 503"
    )
    add_watch(db, apps["alpha"], repos["blog"], "synced")
    add_watch(db, apps["bravo"], repos["blog"], "synced")
    return {"apps": apps, "repos": repos}


def login(page, site: str) -> None:
    page.goto(f"{site}/admin/")
    assert page.url.endswith("/admin/login")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/admin/?$"))


def test_login_logout_and_the_session_cookie(browser, site):
    context = browser.new_context()
    page = context.new_page()
    login(page, site)
    (cookie,) = [c for c in context.cookies() if c["name"] == "docora_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert not cookie["secure"]  # plain http on loopback only; Secure everywhere else
    assert 3500 < cookie["expires"] - time.time() <= 3600
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{site}/admin/login")
    page.goto(f"{site}/admin/apps")
    assert page.url.endswith("/admin/login")  # the session is gone, not just the cookie
    context.close()


def test_a_wrong_password_five_times_locks_the_peer_out(browser, site):
    page = browser.new_page()
    for attempt in range(6):
        page.goto(f"{site}/admin/login")
        page.get_by_label("Username").fill(ADMIN_USER)
        page.get_by_label("Password").fill("wrong" if attempt < 5 else ADMIN_PASSWORD)
        page.get_by_role("button", name="Log in").click()
    assert "Too many failed logins" in page.content()
    assert page.url.endswith("/admin/login")
    page.close()


def test_every_page_shows_the_api_numbers(data, page, site):
    numbers = httpx.get(f"{site}/api/admin/overview", headers=ADMIN).json()
    for field in ("watches.failed", "watches.retrying", "watches.synced", "apps", "repositories"):
        key, _, sub = field.partition(".")
        expected = numbers[key][sub] if sub else numbers[key]
        assert page.locator(f'[data-field="{field}"]').inner_text() == str(expected)
    assert page.get_by_text("git auth: the host refused the credentials").count() == 1
    page.goto(f"{site}/admin/failures")
    assert page.get_by_role("button", name="Retry all failed (2)").count() == 1
    assert "delivery failed: create a.txt: HTTP 503" in page.content()
    page.goto(f"{site}/admin/apps?sort=failed&order=desc")
    rows = page.locator("tbody tr")
    assert rows.count() == 2 and "alpha" in rows.nth(0).inner_text()
    page.goto(f"{site}/admin/apps/{data['apps']['alpha']}")
    assert page.get_by_role("button", name="Retry failed (2)").count() == 1
    assert page.get_by_role("button", name="Resync all (3)").count() == 1
    for path in ("/admin/queue", "/admin/workers", "/admin/deliveries"):
        page.goto(f"{site}{path}")
        assert page.locator("h1").count() == 1


def test_retry_and_resync_from_a_row(data, page, site, db):
    alpha = data["apps"]["alpha"]
    page.goto(f"{site}/admin/apps/{alpha}")
    page.locator("tr.row-failed").get_by_role("button", name="Retry").click()
    assert "Retry queued" in page.locator(".notice").inner_text()
    row = db.execute(
        "SELECT last_error, retry_count FROM watches WHERE repository_id = %s",
        (data["repos"]["docs"],),
    ).fetchone()
    assert row == (None, 0)
    page.locator("tr.row-synced").get_by_role("button", name="Resync").click()
    assert "Resync queued" in page.locator(".notice").inner_text()


def test_a_bulk_operation_to_done_and_one_cancelled(data, page, site, settings):
    alpha = data["apps"]["alpha"]
    page.goto(f"{site}/admin/apps/{alpha}")
    page.get_by_role("button", name="Resync all (3)").click()
    assert re.search(r"/admin/operations/op_[0-9a-f]{24}$", page.url)
    assert page.locator("[data-field=total]").inner_text() == "3"
    cancelled_url = page.url
    page.get_by_role("button", name="Cancel").click()  # no worker yet: stops before item 1
    page.goto(f"{site}/admin/apps/{alpha}")
    page.get_by_role("button", name="Retry failed (2)").click()
    with BackgroundWorker(settings):
        # The page follows the operation by itself (console.js) and reloads when it ends.
        page.wait_for_selector(".status-done", timeout=30_000)
        progress = page.locator("#progress")
        assert progress.get_attribute("value") == progress.get_attribute("max") == "2"
        page.goto(f"{site}/admin/apps/{alpha}")
        cancelled = cancelled_url.rsplit("/", 1)[-1]
        op = f"{site}/api/admin/operations/{cancelled}"
        wait_until(
            lambda: httpx.get(op, headers=ADMIN).json()["status"] == "cancelled",
            30,
            "the cancelled operation never stopped",
        )
    page.goto(f"{site}/admin/apps/{alpha}")
    ops = page.locator(".operations li").all_inner_texts()
    assert any("resync" in op and "cancelled" in op for op in ops), ops
    assert any("retry" in op and "done" in op and "2/2" in op for op in ops), ops


def onboard(page, site: str, name: str, base_url: str) -> None:
    page.goto(f"{site}/admin/onboard")
    page.get_by_label("App name").fill(name)
    page.get_by_label("Webhook base URL").fill(base_url)
    page.get_by_label("Contact email").fill("ops@example.com")
    page.get_by_label("Signing key").fill("a-signing-key-for-the-app")
    page.get_by_role("button", name="Create app").click()


def test_onboarding_shows_the_token_once(page, site):
    onboard(page, site, "console app", "http://127.0.0.1:9/hooks")
    token = page.locator("#created-token").inner_text()
    assert re.fullmatch(r"docora_[0-9a-f]{64}", token)
    assert page.get_by_role("button", name="Copy").count() == 2
    me = httpx.get(f"{site}/api/apps/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["app_name"] == "console app"
    page.goto(f"{site}/admin/onboard")
    assert token not in page.content()
    app_page = page.goto(f"{site}/admin/apps/{me.json()['app_id']}")
    assert app_page.ok and token not in page.content()
    # Validation errors come back on the form, with what was typed kept.
    onboard(page, site, "bad target", "ftp://example.com/hooks")
    assert "base_url must use https" in page.locator(".alert").inner_text()
    assert page.get_by_label("App name").input_value() == "bad target"


def test_deleting_an_app_after_a_confirmation(data, page, site, db):
    bravo = data["apps"]["bravo"]
    page.goto(f"{site}/admin/apps/{bravo}")
    page.get_by_role("link", name="Delete app…").click()
    assert "its 1 watches" in page.locator(".alert").inner_text().replace("\n", " ")
    page.get_by_role("button", name="Delete bravo").click()
    page.wait_for_url(re.compile(r"/admin/apps\?notice="))
    assert "bravo" not in page.locator("tbody").inner_text()
    assert db.execute("SELECT count(*) FROM apps WHERE id = %s", (bravo,)).fetchone()[0] == 0


def test_no_request_leaves_the_origin_and_nothing_scrolls_sideways_at_390px(browser, site, data):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    login(page, site)
    for path in [*PAGES, f"/admin/apps/{data['apps']['alpha']}"]:
        page.goto(f"{site}{path}")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390 px"
    strangers = [url for url in requested if not url.startswith(site)]
    assert strangers == [] and len(requested) > len(PAGES)
    context.close()


def test_everything_works_with_javascript_off(browser, site, data, db):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    login(page, site)
    page.goto(f"{site}/admin/failures")
    page.locator("tr.row-retrying").get_by_role("button", name="Retry").click()
    assert "Retry queued" in page.locator(".notice").inner_text()
    assert db.execute(
        "SELECT last_error FROM watches WHERE repository_id = %s", (data["repos"]["site"],)
    ).fetchone() == (None,)
    page.get_by_role("button", name="Retry all failed (1)").click()
    assert "/admin/operations/op_" in page.url and page.locator("progress").count() == 1
    context.close()


def test_labels_on_every_field(data, page, site):
    for path in [*PAGES, f"/admin/apps/{data['apps']['alpha']}"]:
        page.goto(f"{site}{path}")
        unlabeled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
               .filter(el => !(el.id && document.querySelector(`label[for="${el.id}"]`)))
               .map(el => el.name)"""
        )
        assert unlabeled == [], (path, unlabeled)
