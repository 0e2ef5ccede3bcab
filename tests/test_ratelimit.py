from docora.web.ratelimit import RateLimiter, VerifiedCredentials, peer_address, rate_limit_key
from tests.conftest import admin_headers, onboard


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_bucket_allows_the_rate_then_refuses_with_a_wait():
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    assert all(limiter.acquire("k") == 0 for _ in range(60))
    wait = limiter.acquire("k")
    assert 0 < wait <= 1.0
    clock.now += 1.0
    assert limiter.acquire("k") == 0
    assert limiter.acquire("other") == 0


def scope(peer, headers=()):
    return {"type": "http", "client": (peer, 1234), "headers": list(headers)}


def test_forwarded_for_is_never_read_by_the_app():
    # uvicorn rewrites the client for TRUSTED_PROXIES (tests/test_proxy_trust.py); the
    # application itself only ever sees the socket peer it was given.
    s = scope("203.0.113.9", [(b"x-forwarded-for", b"1.2.3.4")])
    assert peer_address(s) == "203.0.113.9"


def test_only_verified_tokens_get_their_own_bucket():
    verified = VerifiedCredentials()
    s = scope("1.1.1.1", [(b"authorization", b"Bearer docora_secret")])
    assert rate_limit_key(s, verified) == "peer:1.1.1.1"  # unknown: charged to the peer
    verified.add("docora_secret")
    key = rate_limit_key(s, verified)
    assert key.startswith("token:") and "docora_secret" not in key
    assert rate_limit_key(scope("1.1.1.1"), verified) == "peer:1.1.1.1"


def test_verified_credentials_are_bounded():
    verified = VerifiedCredentials(capacity=2)
    for token in ("a", "b", "c"):
        verified.add(token)
    keys = [
        rate_limit_key(scope("p", [(b"authorization", f"Bearer {t}".encode())]), verified)
        for t in ("a", "b", "c")
    ]
    assert keys[0] == "peer:p" and keys[1].startswith("token:") and keys[2].startswith("token:")


def test_random_bearer_strings_share_the_peer_bucket(make_settings):
    from litestar.testing import TestClient

    from docora.asgi import create_app

    with TestClient(create_app(make_settings(RATE_LIMIT_PER_MINUTE="5"))) as client:
        _, headers = onboard(client)
        assert client.get("/api/apps/me", headers=headers).status_code == 200
        statuses = [
            client.get(
                "/schema/openapi.json", headers={"Authorization": f"Bearer junk-{i}"}
            ).status_code
            for i in range(8)
        ]
        # Onboarding and the first /me came with tokens not yet verified, so they were
        # charged to the peer: 3 junk requests pass, then the peer is limited.
        assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}
        # A token that authenticated earlier keeps its own bucket.
        assert client.get("/api/apps/me", headers=headers).status_code == 200
        assert client.get("/api/apps/onboard", headers=admin_headers()).status_code == 405
