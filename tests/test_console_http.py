"""The console's security as raw HTTP sees it: CSRF, lockout, cookie flags, the password
forms ADMIN_PASSWORD accepts."""

from __future__ import annotations

import pytest

from docora.admin.passwords import password_matches
from docora.admin.sessions import cookie_is_secure
from docora.asgi import create_app
from tests.admin import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    add_repository,
    add_watch,
    console_settings,
    csrf_of,
    https_client,
    login,
)
from tests.conftest import onboard
from tests.test_cli import docora


@pytest.fixture
def console(make_settings):
    with https_client(create_app(console_settings(make_settings))) as client:
        yield client


def test_forms_without_the_session_csrf_token_are_refused(console):
    app_id, _ = onboard(console)
    csrf = login(console)
    for form in ({}, {"csrf_token": "forged"}):
        r = console.post(f"/admin/apps/{app_id}/token", data=form)
        assert r.status_code == 403 and "did not come from this console" in r.text
    r = console.post("/admin/onboard", data={"app_name": "x"})
    assert r.status_code == 403
    assert console.post(f"/admin/apps/{app_id}/token", data={"csrf_token": csrf}).status_code == 200
    # Logging out needs the token too (no forced logout from another site).
    assert console.post("/admin/logout", data={}).status_code == 403


def test_the_session_cookie_is_http_only_strict_and_secure(console):
    r = console.post(
        "/admin/login",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
        follow_redirects=False,
    )
    cookie = r.headers["set-cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Max-Age=3600", "Path=/"):
        assert flag in cookie
    assert cookie_is_secure("http", "127.0.0.1") is False  # plain http on loopback only
    assert cookie_is_secure("http", "10.0.0.5") is True
    assert cookie_is_secure("https", "127.0.0.1") is True


def test_five_failed_logins_a_minute_lock_the_peer_out(console):
    for _ in range(5):
        r = console.post("/admin/login", data={"username": ADMIN_USER, "password": "nope"})
        assert r.status_code == 401
    r = console.post("/admin/login", data={"username": ADMIN_USER, "password": ADMIN_PASSWORD})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_a_tampered_or_expired_cookie_is_no_session(console, db):
    login(console)
    value = console.cookies.get("docora_session")
    console.cookies.set("docora_session", value[:-1] + ("0" if value[-1] != "0" else "1"))
    assert console.get("/admin/apps", follow_redirects=False).status_code == 303
    console.cookies.set("docora_session", value)
    assert console.get("/admin/apps").status_code == 200
    db.execute("UPDATE admin_sessions SET last_seen_at = now() - interval '61 minutes'")
    r = console.get("/admin/apps", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/admin/login"


def test_pages_carry_a_strict_content_security_policy(console):
    login(console)
    headers = console.get("/admin/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    page = console.get("/admin/").text
    assert '<script src="/admin/static/console.js"' in page and "http" not in page.split("<body>")[
        0
    ].replace("http-equiv", "")


def test_hash_password_command_and_both_hash_forms(make_settings):
    result = docora("hash-password", input="a-long-console-password\n")
    assert result.returncode == 0, result.stderr
    hashed = result.stdout.strip()
    assert hashed.startswith("scrypt$") and "a-long-console-password" not in hashed
    assert password_matches("a-long-console-password", hashed)
    assert not password_matches("a-long-console-passwore", hashed)
    assert docora("hash-password", input="short\n").returncode == 2
    from argon2 import PasswordHasher

    argon = PasswordHasher().hash("another-password-42")
    for stored, given in ((hashed, "a-long-console-password"), (argon, "another-password-42")):
        settings = make_settings(ADMIN_USERNAME="ops", ADMIN_PASSWORD=stored)
        with https_client(create_app(settings)) as client:
            r = client.post(
                "/admin/login", data={"username": "ops", "password": given}, follow_redirects=False
            )
            assert r.status_code == 303
            assert csrf_of(client.get("/admin/onboard").text)


def test_the_app_page_shows_the_delivery_mode_and_each_watchs_paths(console, db):
    app_id, headers = onboard(console, delivery_mode="batch")
    rid = add_repository(db, "filtered")
    add_watch(db, app_id, rid, "retrying", "delivery failed: HTTP 503")
    answer = console.patch(
        f"/api/repositories/{rid}", json={"paths": ["docs/**", "!docs/drafts/**"]}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    login(console)
    page = console.get(f"/admin/apps/{app_id}").text
    assert "batch, concurrency 1" in page
    assert "docs/**, !docs/drafts/**" in page
