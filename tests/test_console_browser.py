"""The console as an operator uses it, in headless Chromium against the real service: its
pages and actions, and its charts (drawn with data and without, their text alternative in
the operator API's numbers, nothing from another origin, readable with JavaScript off and
at 390 px)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.admin import (
    ADMIN,
    ADMIN_PASSWORD,
    ADMIN_USER,
    add_history,
    add_repository,
    add_sync_history,
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


def detail_pages(data) -> list[str]:
    return [
        f"/admin/apps/{data['apps']['alpha']}",
        f"/admin/repositories/{data['repos']['docs']}",
    ]


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
    for path in [*PAGES, *detail_pages(data)]:
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
    for path in [*PAGES, *detail_pages(data)]:
        page.goto(f"{site}{path}")
        unlabeled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
               .filter(el => !(el.id && document.querySelector(`label[for="${el.id}"]`)))
               .map(el => el.name)"""
        )
        assert unlabeled == [], (path, unlabeled)


# --- charts: drawn with data and without, their text alternative in the API's numbers ---


@pytest.fixture
def history(data, db):
    """Ninety minutes of alpha's deliveries, a day of syncs of its docs repository."""
    add_history(db, data["apps"]["alpha"], data["repos"]["docs"], minutes=90, per_minute=3)
    add_history(db, data["apps"]["bravo"], data["repos"]["blog"], minutes=30, per_minute=1)
    add_sync_history(db, data["repos"]["docs"], hours=24)
    return data


def _table(page, chart_id: str) -> dict[str, list[str]]:
    """The chart's data table, opened as a reader would: first cell -> the other cells."""
    figure = page.locator(f"#{chart_id}")
    figure.locator("summary").click()
    rows = figure.locator("tbody tr").all()
    return {cells[0]: cells[1:] for cells in (r.locator("td").all_inner_texts() for r in rows)}


def _api(site: str, path: str) -> dict:
    with httpx.Client(base_url=site, headers=ADMIN) as api:
        answer = api.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


def _label(at: str, step_seconds: int) -> str:
    """The API's `at` as the console labels its step."""
    day, time = at[5:10], at[11:16]
    return f"{day} {time}" if step_seconds >= 3600 else time


def _number(value) -> str:
    return "—" if value is None else f"{value:,}"


def _same_steps(table: dict[str, list[str]], trend: dict, fields: tuple[str, ...]) -> int:
    """Compare the steps both show (a minute may turn between the two reads; the newest
    step can still grow); returns how many were compared."""
    compared = 0
    for point in trend["points"][:-1]:
        label = _label(point["at"], trend["step_seconds"])
        if label in table:
            assert table[label] == [_number(point[f]) for f in fields], label
            compared += 1
    return compared


def test_the_charts_tell_the_apis_numbers(history, page, site):
    alpha, docs = history["apps"]["alpha"], history["repos"]["docs"]
    page.goto(f"{site}/admin/?window=1h")
    trend = _api(site, "/api/admin/trends/deliveries?window=1h")
    assert page.locator("#all-deliveries svg rect").count() > 50
    assert page.locator("#all-latency svg polyline").count() >= 2
    summary = page.locator("#all-deliveries .chart-summary").inner_text()
    assert f"{trend['delivered']:,} delivered and {trend['failed']:,} failed" in summary
    assert trend["delivered"] + trend["failed"] >= 3 * 59 + 1 * 29
    counts = _table(page, "all-deliveries")
    assert _same_steps(counts, trend, ("delivered", "failed")) >= 55
    latency = _table(page, "all-latency")
    assert _same_steps(latency, trend, ("p50_ms", "p95_ms")) >= 55
    assert f"p95 {trend['p95_ms']:,} ms" in page.locator("#all-latency").inner_text()

    page.goto(f"{site}/admin/apps/{alpha}?window=24h")
    mine = _api(site, f"/api/admin/trends/deliveries?window=24h&app_id={alpha}")
    assert mine["step_seconds"] == 600 and len(mine["points"]) == 144
    assert _same_steps(_table(page, "app-deliveries"), mine, ("delivered", "failed")) >= 140
    everyone = _api(site, "/api/admin/trends/deliveries?window=24h")
    assert mine["delivered"] + mine["failed"] < everyone["delivered"] + everyone["failed"]

    page.goto(f"{site}/admin/repositories/{docs}")
    syncs = _api(site, f"/api/admin/trends/repositories/{docs}?window=24h")
    table = page.locator("#repo-syncs")
    table.locator("summary").click()
    durations = [
        row[1]
        for row in (r.locator("td").all_inner_texts() for r in table.locator("tbody tr").all())
    ]
    assert durations == [f"{s['duration_ms']:,}" for s in syncs["syncs"]]
    failed = sum(1 for s in syncs["syncs"] if s["outcome"] == "failed")
    assert (
        f"{len(syncs['syncs'])} syncs in the last 24 hours ({failed} failed)" in table.inner_text()
    )
    assert page.locator("#repo-syncs svg line.stem.bad").count() == failed
    lag = _table(page, "repo-lag")
    worst = max(p["max_lag_seconds"] for p in syncs["lag"])
    assert f"had waited {worst:,.0f} s" in page.locator("#repo-lag .chart-summary").inner_text()
    assert len(lag) == len(syncs["lag"]) == 144


def test_the_charts_say_so_when_there_is_nothing(data, page, site):
    page.goto(f"{site}/admin/")
    assert "No deliveries in the last hour." in page.locator("#all-deliveries").inner_text()
    assert page.locator("#all-deliveries svg rect").count() == 0
    assert page.locator("#all-latency svg polyline").count() == 0
    rows = _table(page, "all-deliveries")
    assert len(rows) == 60 and set(map(tuple, rows.values())) == {("0", "0")}
    page.goto(f"{site}/admin/repositories/{data['repos']['blog']}")
    assert "No syncs in the last 24 hours." in page.locator("#repo-syncs").inner_text()
    assert "No rescan checks recorded" in page.locator("#repo-lag").inner_text()
    page.goto(f"{site}/admin/?window=forever")  # an unknown window is the default one
    assert page.locator("#all-deliveries").count() == 1


def test_charts_without_javascript_at_390px_and_from_this_origin_only(browser, site, history):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    login(page, site)
    paths = [
        "/admin/?window=24h",
        f"/admin/apps/{history['apps']['alpha']}?window=1h",
        f"/admin/repositories/{history['repos']['docs']}?window=7d",
    ]
    for path in paths:
        page.goto(f"{site}{path}")
        figures = page.locator("figure.chart")
        assert figures.count() == 2
        for figure in figures.all():
            assert figure.locator("svg title").count() == 1
            box = figure.locator("svg").bounding_box()
            assert box and 300 <= box["width"] <= 390 and box["height"] > 100
            figure.locator("summary").click()  # <details> opens without JavaScript
            assert figure.locator("table").is_visible()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 390 px"
    assert [url for url in requested if not url.startswith(site)] == []
    context.close()
