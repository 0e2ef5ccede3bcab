import time

from litestar import get
from litestar.testing import TestClient

from docora.asgi import create_app
from tests.conftest import admin_headers


def test_unknown_route_and_wrong_method_are_json(client):
    r = client.get("/no/such/route")
    assert r.status_code == 404 and set(r.json()) == {"error"}
    r = client.delete("/health")
    assert r.status_code == 405 and set(r.json()) == {"error"}


def test_body_over_one_mebibyte_is_413(client):
    r = client.post(
        "/api/apps/onboard",
        content=b"x" * (1024 * 1024 + 1),
        headers={"Content-Type": "application/json", **admin_headers()},
    )
    assert r.status_code == 413 and "1 MiB" in r.json()["error"]


def test_unexpected_errors_are_500_without_internals(settings, caplog):
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    app = create_app(settings)
    app.register(boom)
    with TestClient(app) as client:
        r = client.get("/boom")
    assert r.status_code == 500 and r.json() == {"error": "Internal server error"}
    assert "secret internal detail" not in r.text and "Traceback" not in r.text


def test_health_and_version(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["queue"] == "ok"
    assert body["timestamp"].endswith("Z") and len(body["timestamp"]) == 24
    assert isinstance(body["uptime"], float)
    assert client.get("/version").json()["version"]


def test_health_is_503_when_postgres_is_unreachable(make_settings, tmp_path):
    settings = make_settings(
        DATABASE_URL=f"postgresql://postgres@/postgres?host={tmp_path}&connect_timeout=1"
    )
    with TestClient(create_app(settings)) as client:
        r = client.get("/health")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable" and r.json()["database"] == "unavailable"


def test_api_answers_503_while_postgres_is_unreachable(make_settings, tmp_path):
    settings = make_settings(
        DATABASE_URL=f"postgresql://postgres@/postgres?host={tmp_path}&connect_timeout=1"
    )
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        r = client.get("/api/apps/me", headers={"Authorization": "Bearer docora_" + "0" * 64})
        waited = time.monotonic() - started
    assert r.status_code == 503 and r.json() == {"error": "Database unavailable, retry later"}
    assert r.headers["retry-after"] == "5"
    assert waited < 10


def test_openapi_describes_every_route_auth_and_errors(client):
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path in (
        "/api/apps/onboard",
        "/api/apps/me",
        "/api/repositories",
        "/api/repositories/{repository_id}",
        "/api/repositories/{repository_id}/token",
        "/api/repositories/{repository_id}/resync",
        "/api/deliveries",
        "/health",
        "/version",
    ):
        assert path in paths, path
    assert set(spec["components"]["securitySchemes"]) == {
        "BearerAuth",
        "AdminToken",
        "ConsoleSession",
    }
    register = paths["/api/repositories"]["post"]
    assert {"400", "401", "404", "422", "429"} <= set(register["responses"])
    assert register["security"] == [{"BearerAuth": []}]
    schemas = spec["components"]["schemas"]
    assert (
        "ErrorBody" in schemas
        and "github_url" in schemas["RegisterRepositoryRequest"]["properties"]
    )
    assert schemas["RegisterRepositoryRequest"]["additionalProperties"] is False
    assert client.get("/schema").status_code == 200
