from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from litestar.testing import TestClient

from docora.asgi import create_app
from docora.config import Settings, load_settings
from docora.db import embedded_postgres
from docora.migrate import apply_migrations
from tests import pg
from tests.receiver import ReceiverServer
from tests.worker import BackgroundWorker, kill_leftover_workers

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
RECEIVER_KEY = "receiver-signing-key-0123456789"


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with (
        tempfile.TemporaryDirectory(prefix="docora-pg-") as tmp,
        embedded_postgres(Path(tmp) / "data", keep=False) as url,
    ):
        yield url


@pytest.fixture(scope="session")
def migrated_url(server_url: str) -> Iterator[str]:
    url = pg.create_database(server_url)
    apply_migrations(url)
    yield url
    pg.drop_database(server_url, url)


@pytest.fixture
def database_url(migrated_url: str) -> str:
    pg.truncate_all(migrated_url)
    return migrated_url


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def encryption_key() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def make_settings(database_url: str, encryption_key: str, tmp_path: Path):
    def make(**overrides: str) -> Settings:
        env = {
            "DATABASE_URL": database_url,
            "ENCRYPTION_KEY": encryption_key,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "ALLOW_LOCAL_REPOSITORIES": "true",
            "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
            "REPOS_BASE_PATH": str(tmp_path / "mirrors"),
            "GIT_TIMEOUT_MS": "20000",
        }
        env.update(overrides)
        return load_settings(env)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    yield
    kill_leftover_workers()


@pytest.fixture
def worker(settings: Settings) -> Iterator[BackgroundWorker]:
    """A real Procrastinate worker with the test's settings (override `settings` to tune)."""
    with BackgroundWorker(settings) as background:
        yield background


@pytest.fixture
def receiver() -> Iterator[ReceiverServer]:
    with ReceiverServer(RECEIVER_KEY) as server:
        yield server


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def onboard(client: TestClient, **overrides) -> tuple[str, dict[str, str]]:
    body = {
        "app_name": "test app",
        "base_url": "http://127.0.0.1:9/hooks",
        "email": "dev@example.com",
        "client_auth_key": "signing-key-0123456789",
    }
    body.update(overrides)
    response = client.post("/api/apps/onboard", json=body, headers=admin_headers())
    assert response.status_code == 201, response.text
    data = response.json()
    return data["app_id"], {"Authorization": f"Bearer {data['token']}"}
