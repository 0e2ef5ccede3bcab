"""X-Forwarded-For through a real uvicorn: believed only from TRUSTED_PROXIES."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.test_cli import free_port, wait_healthy

pytestmark = pytest.mark.slow


def start_api(settings, **env: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "docora", "api"],
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "ENCRYPTION_KEY": settings.encryption_key,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "LOG_LEVEL": "warning",
            "RATE_LIMIT_PER_MINUTE": "3",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_healthy(port, proc)
    return proc, port


def statuses(port: int, forwarded: list[str]) -> list[int]:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        return [
            client.get("/schema/openapi.json", headers={"X-Forwarded-For": ip}).status_code
            for ip in forwarded
        ]


@pytest.fixture
def api(settings, request):
    proc, port = start_api(settings, **request.param)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


SPOOFED = [f"198.51.100.{i}" for i in range(1, 9)]


@pytest.mark.parametrize("api", [{}], indirect=True)
def test_spoofed_forwarded_for_from_loopback_is_ignored(api):
    # Without TRUSTED_PROXIES a client on loopback is not a proxy: every request is its own.
    assert statuses(api, SPOOFED)[3:] == [429] * 5


@pytest.mark.parametrize("api", [{"TRUSTED_PROXIES": "127.0.0.1/32"}], indirect=True)
def test_forwarded_for_from_a_listed_proxy_names_the_client(api):
    # Behind a listed proxy each forwarded client has its own bucket...
    assert set(statuses(api, SPOOFED)) == {200}
    # ...and one client is limited however its requests arrive.
    assert statuses(api, ["203.0.113.7"] * 5)[3:] == [429, 429]


@pytest.mark.parametrize("api", [{"TRUSTED_PROXIES": "10.0.0.0/8"}], indirect=True)
def test_forwarded_for_from_a_peer_outside_the_list_is_ignored(api):
    assert statuses(api, SPOOFED)[3:] == [429] * 5
