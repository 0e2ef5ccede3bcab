import ipaddress

from docora.api.ratelimit import RateLimiter, peer_address, rate_limit_key


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


def test_forwarded_for_is_ignored_from_untrusted_peers():
    s = scope("203.0.113.9", [(b"x-forwarded-for", b"1.2.3.4")])
    assert peer_address(s, []) == "203.0.113.9"
    assert peer_address(s, [ipaddress.ip_network("10.0.0.0/8")]) == "203.0.113.9"


def test_forwarded_for_is_used_from_trusted_proxies():
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    s = scope("10.0.0.5", [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.7")])
    # The rightmost hop that is not ours: a client cannot spoof past the proxy.
    assert peer_address(s, trusted) == "1.2.3.4"


def test_key_prefers_the_bearer_token_and_never_stores_it():
    s = scope("1.1.1.1", [(b"authorization", b"Bearer docora_secret")])
    key = rate_limit_key(s, [])
    assert key.startswith("token:") and "docora_secret" not in key
    assert rate_limit_key(scope("1.1.1.1"), []) == "peer:1.1.1.1"
