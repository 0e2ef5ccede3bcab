"""Guessing tokens: brute force is cut off, and a guess's timing says nothing about the secret.

App tokens are looked up by their SHA-256 digest and the admin token is compared digest to
digest with `hmac.compare_digest`, so a guess sharing all but one character with the real
token should take as long as a random one. Measured here through the whole HTTP stack.
"""

from __future__ import annotations

import secrets
import statistics
import time

from litestar.testing import TestClient

from docora.asgi import create_app
from tests.conftest import ADMIN_TOKEN, onboard

ROUNDS = 300
ONBOARD_BODY = {
    "app_name": "x",
    "base_url": "https://example.com/hook",
    "email": "dev@example.com",
    "client_auth_key": "signing-key-0123456789",
}


def last_char_changed(token: str) -> str:
    return token[:-1] + ("0" if token[-1] != "0" else "1")


def random_like(token: str) -> str:
    prefix = "docora_" if token.startswith("docora_") else ""
    body = secrets.token_hex(len(token))[: len(token) - len(prefix)]
    return prefix + body


def median_ms(client: TestClient, method: str, path: str, guesses: dict[str, str]) -> dict:
    """Interleaved, so drift in machine load hits every kind of guess alike."""
    samples: dict[str, list[float]] = {kind: [] for kind in guesses}
    for _ in range(ROUNDS):
        for kind, token in guesses.items():
            headers = {"Authorization": f"Bearer {token}"}
            started = time.perf_counter()
            r = client.request(method, path, headers=headers, json=ONBOARD_BODY)
            samples[kind].append((time.perf_counter() - started) * 1000)
            assert r.status_code == 401, r.text
    return {kind: statistics.median(values) for kind, values in samples.items()}


def assert_indistinguishable(medians: dict[str, float], what: str) -> None:
    spread = max(medians.values()) - min(medians.values())
    figures = ", ".join(f"{kind} {ms:.3f} ms" for kind, ms in medians.items())
    print(f"{what}: median per bad guess: {figures}; spread {spread * 1000:.0f} µs")
    # A leak worth exploiting (an early return, a second query) costs far more than this.
    assert spread < max(0.1, 0.05 * min(medians.values())), figures


def test_bad_app_token_timing_is_constant(make_settings):
    settings = make_settings(RATE_LIMIT_PER_MINUTE="100000000")
    with TestClient(create_app(settings)) as client:
        _, headers = onboard(client)
        token = headers["Authorization"].removeprefix("Bearer ")
        guesses = {
            "one char off": last_char_changed(token),
            "random": random_like(token),
            "half right": token[: len(token) // 2] + random_like(token)[len(token) // 2 :],
        }
        assert_indistinguishable(median_ms(client, "GET", "/api/apps/me", guesses), "app token")


def test_bad_admin_token_timing_is_constant(make_settings):
    settings = make_settings(RATE_LIMIT_PER_MINUTE="100000000")
    with TestClient(create_app(settings)) as client:
        guesses = {
            "one char off": last_char_changed(ADMIN_TOKEN),
            "random": random_like(ADMIN_TOKEN),
            "much longer": ADMIN_TOKEN + "x" * 200,
        }
        medians = median_ms(client, "POST", "/api/apps/onboard", guesses)
        assert_indistinguishable(medians, "admin token")


def test_admin_token_brute_force_is_stopped(make_settings):
    with TestClient(create_app(make_settings(RATE_LIMIT_PER_MINUTE="100"))) as client:
        codes = []
        for _ in range(15):
            headers = {"Authorization": f"Bearer {random_like(ADMIN_TOKEN)}"}
            codes.append(client.post("/api/apps/onboard", json=ONBOARD_BODY, headers=headers))
        statuses = [r.status_code for r in codes]
        assert statuses[:10] == [401] * 10 and statuses[-1] == 429
        assert int(codes[-1].headers["retry-after"]) >= 1
        # Even the right token is refused until the wait is over.
        right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.post("/api/apps/onboard", json=ONBOARD_BODY, headers=right).status_code == 429
