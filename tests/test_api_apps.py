from litestar.testing import TestClient

from docora.asgi import create_app
from tests.conftest import ADMIN_TOKEN, admin_headers, onboard

BODY = {
    "app_name": "my app",
    "base_url": "https://hooks.example.com/docora/",
    "email": "dev@example.com",
    "client_auth_key": "k" * 16,
}


def public_resolver(address="93.184.216.34"):
    async def resolve(host, port):
        return [address]

    return resolve


def test_onboard_returns_token_once_and_normalizes_base_url(make_settings, db):
    settings = make_settings(ALLOW_PRIVATE_WEBHOOK_TARGETS="false")
    with TestClient(create_app(settings, resolver=public_resolver())) as client:
        response = client.post("/api/apps/onboard", json=BODY, headers=admin_headers())
        assert response.status_code == 201
        data = response.json()
        assert data["app_id"].startswith("app_") and len(data["app_id"]) == 28
        assert data["token"].startswith("docora_") and len(data["token"]) == 71
        me = client.get("/api/apps/me", headers={"Authorization": f"Bearer {data['token']}"})
        assert me.status_code == 200
        profile = me.json()
        assert profile["base_url"] == "https://hooks.example.com/docora"
        assert "client_auth_key" not in profile and "token" not in profile
    stored = db.execute("SELECT token_digest FROM apps").fetchone()[0]
    assert data["token"].encode() not in bytes(stored)


def test_onboard_requires_the_admin_token(client):
    assert client.post("/api/apps/onboard", json=BODY).status_code == 401
    r = client.post("/api/apps/onboard", json=BODY, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json() == {"error": "Invalid admin token"}


def test_onboard_disabled_without_admin_token(make_settings):
    with TestClient(create_app(make_settings(ADMIN_TOKEN=""))) as client:
        r = client.post("/api/apps/onboard", json=BODY, headers=admin_headers())
        assert r.status_code == 403 and "ADMIN_TOKEN" in r.json()["error"]


def test_validation_errors_name_the_field(client):
    cases = [
        ({**BODY, "app_name": "ab"}, "app_name"),
        ({**BODY, "app_name": "x" * 101}, "app_name"),
        ({**BODY, "email": "not-an-email"}, "email"),
        ({**BODY, "client_auth_key": "short"}, "client_auth_key"),
        ({**BODY, "client_auth_key": "k" * 501}, "client_auth_key"),
        ({**BODY, "description": "d" * 501}, "description"),
        ({**BODY, "delivery_concurrency": 33}, "delivery_concurrency"),
        ({**BODY, "delivery_concurrency": 0}, "delivery_concurrency"),
        ({k: v for k, v in BODY.items() if k != "email"}, "email"),
        ({**BODY, "unexpected": 1}, "unexpected"),
    ]
    for body, field in cases:
        r = client.post("/api/apps/onboard", json=body, headers=admin_headers())
        assert r.status_code == 400, body
        assert field in r.json()["error"], r.json()
    r = client.post("/api/apps/onboard", content=b"{not json", headers=admin_headers())
    assert r.status_code == 400 and "error" in r.json()


def test_base_url_ssrf_is_refused_with_422(make_settings):
    settings = make_settings(ALLOW_PRIVATE_WEBHOOK_TARGETS="false")
    for address in ("127.0.0.1", "10.0.0.8", "169.254.169.254", "::1"):
        with TestClient(create_app(settings, resolver=public_resolver(address))) as client:
            r = client.post("/api/apps/onboard", json=BODY, headers=admin_headers())
            assert r.status_code == 422 and "must resolve to public addresses" in r.json()["error"]
    with TestClient(create_app(settings, resolver=public_resolver())) as client:
        r = client.post(
            "/api/apps/onboard",
            json={**BODY, "base_url": "http://hooks.example.com"},
            headers=admin_headers(),
        )
        assert r.status_code == 422 and "https" in r.json()["error"]


def test_me_requires_a_valid_token(client):
    assert client.get("/api/apps/me").status_code == 401
    bad = {"Authorization": "Bearer docora_" + "0" * 64}
    r = client.get("/api/apps/me", headers=bad)
    assert r.status_code == 401 and r.json() == {"error": "Invalid bearer token"}
    assert client.get("/api/apps/me", headers={"Authorization": "Basic x"}).status_code == 401


def test_patch_me(client, db):
    _app_id, headers = onboard(client)
    before = db.execute("SELECT client_auth_key_enc FROM apps").fetchone()[0]
    r = client.patch(
        "/api/apps/me",
        json={"delivery_concurrency": 8, "base_url": "http://127.0.0.1:7/new/"},
        headers=headers,
    )
    assert r.status_code == 200
    assert (
        r.json()["delivery_concurrency"] == 8 and r.json()["base_url"] == "http://127.0.0.1:7/new"
    )
    r = client.patch(
        "/api/apps/me", json={"client_auth_key": "rotated-key-0123456"}, headers=headers
    )
    assert r.status_code == 200
    after = db.execute("SELECT client_auth_key_enc FROM apps").fetchone()[0]
    assert before != after
    unchanged = client.patch("/api/apps/me", json={}, headers=headers)
    assert unchanged.status_code == 200 and unchanged.json()["delivery_concurrency"] == 8
    assert (
        client.patch("/api/apps/me", json={"delivery_concurrency": 99}, headers=headers).status_code
        == 400
    )
    assert (
        client.patch("/api/apps/me", json={"base_url": "ftp://x"}, headers=headers).status_code
        == 422
    )


def test_rate_limit_gives_429_with_retry_after(make_settings):
    with TestClient(create_app(make_settings(RATE_LIMIT_PER_MINUTE="5"))) as client:
        codes = [client.get("/api/apps/me").status_code for _ in range(7)]
        assert codes[:5] == [401] * 5 and codes[-1] == 429
        r = client.get("/api/apps/me")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"].startswith("Too many")
        assert client.get("/health").status_code == 200  # never limited


def test_token_brute_force_is_stopped(make_settings):
    with TestClient(create_app(make_settings(RATE_LIMIT_PER_MINUTE="100"))) as client:
        codes = []
        for i in range(15):
            headers = {"Authorization": f"Bearer docora_{i:064x}"}
            codes.append(client.get("/api/apps/me", headers=headers).status_code)
        assert codes[:10] == [401] * 10 and codes[-1] == 429
        r = client.post(
            "/api/apps/onboard", json=BODY, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert r.status_code == 429  # the peer is blocked, even with the right token


SSRF_BASE_URLS = [
    "https://127.0.0.1/h",
    "https://localhost/h",
    "https://[::1]/h",
    "https://0.0.0.0/h",
    "https://169.254.169.254/latest/meta-data",
    "https://10.1.2.3/h",
    "https://172.16.5.4/h",
    "https://172.31.0.1/h",
    "https://192.168.0.1/h",
    "https://100.64.0.1/h",
    "https://[fc00::1]/h",
    "https://[fd00::5]/h",
    "https://[fe80::1]/h",
    "https://[::ffff:127.0.0.1]/h",
    "https://2130706433/h",
    "https://0177.0.0.1/h",
    "https://0x7f000001/h",
    "https://127.1/h",
]


def test_ssrf_table_at_onboarding_and_update(make_settings):
    """Literal and encoded private addresses, with the system resolver: all refused."""
    settings = make_settings(ALLOW_PRIVATE_WEBHOOK_TARGETS="false")
    with TestClient(create_app(settings)) as client:
        for url in SSRF_BASE_URLS:
            r = client.post(
                "/api/apps/onboard", json={**BODY, "base_url": url}, headers=admin_headers()
            )
            assert r.status_code == 422, (url, r.text)
            assert set(r.json()) == {"error"}
    # An app whose base_url was public cannot be pointed inwards later either.
    with TestClient(create_app(settings, resolver=public_resolver())) as client:
        _, headers = onboard(client, base_url="https://hooks.example.com/x")
    with TestClient(create_app(settings)) as client:
        for url in SSRF_BASE_URLS:
            r = client.patch("/api/apps/me", json={"base_url": url}, headers=headers)
            assert r.status_code == 422, (url, r.text)
        assert client.get("/api/apps/me", headers=headers).json()["base_url"] == (
            "https://hooks.example.com/x"
        )
