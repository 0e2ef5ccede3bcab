"""Push webhooks (SPEC section 8): each provider's signature over the raw body, its payload,
matching registered repositories through an index, one waiting sync each."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest
from litestar.testing import TestClient

from docora.asgi import create_app
from docora.hooks.providers import (
    parse_bitbucket,
    parse_gitea,
    parse_github,
    parse_gitlab,
    verify_bitbucket,
    verify_gitea,
    verify_github,
    verify_gitlab,
)
from tests import hook_payloads as payloads
from tests.e2e import register_app, wait_status, wait_until, watch
from tests.gitrepo import GitRepo
from tests.worker import BackgroundWorker

SECRET = "push-hook-secret-0123456789"


def test_githubs_documented_test_vector_verifies():
    secret, body = "It's a Secret to Everybody", b"Hello, World!"
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify_github(secret, {"x-hub-signature-256": signature}, body)
    assert not verify_github(secret, {"x-hub-signature-256": signature}, body + b" ")
    assert not verify_github(secret, {}, body)


def sha256_hex(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_each_provider_verifies_as_it_signs():
    body = b'{"any": "body"}'
    digest = sha256_hex(body)
    assert verify_gitlab(SECRET, {"x-gitlab-token": SECRET}, body)
    assert not verify_gitlab(SECRET, {"x-gitlab-token": SECRET + "x"}, body)
    assert verify_gitea(SECRET, {"x-gitea-signature": digest}, body)
    assert verify_gitea(SECRET, {"x-forgejo-signature": digest}, body)
    assert not verify_gitea(SECRET, {"x-gitea-signature": "sha256=" + digest}, body)
    assert verify_bitbucket(SECRET, {"x-hub-signature": "sha256=" + digest}, body)
    assert not verify_bitbucket(SECRET, {"x-hub-signature": digest}, body)


def test_payloads_name_the_repository_and_branches():
    push = parse_github(
        {"x-github-event": "push"}, payloads.github_push("https://github.com/o/r.git")
    )
    assert (push.kind, push.url, push.branches) == ("push", "https://github.com/o/r.git", ("main",))
    assert parse_github({"x-github-event": "ping"}, payloads.GITHUB_PING).kind == "ping"
    tag = payloads.github_push("https://github.com/o/r.git", ref="refs/tags/v1")
    assert parse_github({"x-github-event": "push"}, tag).kind == "ignored"
    assert parse_github({"x-github-event": "issues"}, b"{}").kind == "ignored"
    gitlab = parse_gitlab(
        {"x-gitlab-event": "Push Hook"},
        payloads.gitlab_push("https://gl.example/m/d.git", "refs/heads/dev"),
    )
    assert (gitlab.url, gitlab.branches) == ("https://gl.example/m/d.git", ("dev",))
    gitea = parse_gitea(
        {"x-forgejo-event": "push"}, payloads.gitea_push("https://git.example/g/w.git")
    )
    assert gitea.branches == ("main",)
    bitbucket = parse_bitbucket(
        {"x-event-key": "repo:push"},
        payloads.bitbucket_push("team/repo", ["main", "dev"], deleted="old"),
    )
    assert bitbucket.url == "https://bitbucket.org/team/repo"
    assert bitbucket.branches == ("main", "dev", "old")  # a deleted branch wakes its sync too


@pytest.fixture
def hooks(make_settings):
    settings = make_settings(PUSH_WEBHOOK_SECRET=SECRET)
    with TestClient(create_app(settings)) as client:
        yield client


def github(client, url: str, *, ref: str = "refs/heads/main", secret: str = SECRET):
    body = payloads.github_push(url, ref)
    headers = {
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": "sha256=" + sha256_hex(body, secret),
        "Content-Type": "application/json",
    }
    return client.post("/api/hooks/github", content=body, headers=headers)


def register_http(db, url: str, branch: str = "main") -> str:
    from docora.ids import repository_id

    rid = repository_id(url, branch)
    db.execute(
        "INSERT INTO repositories (id, url, host, owner, name, branch)"
        " VALUES (%s, %s, 'github.com', 'Octo-Org', 'Hello', %s)",
        (rid, url, branch),
    )
    return rid


def waiting_syncs(db) -> dict[str, int]:
    rows = db.execute(
        "SELECT args->>'repository_id', count(*) FROM procrastinate_jobs"
        " WHERE task_name = 'docora.sync_repository' AND status = 'todo' GROUP BY 1"
    ).fetchall()
    return dict(rows)


def test_a_push_queues_one_sync_per_matching_repository(hooks, db):
    main = register_http(db, "https://github.com/Octo-Org/Hello")
    register_http(db, "https://github.com/Octo-Org/Hello", branch="dev")
    register_http(db, "https://github.com/octo-org/other")
    # Host and path compared case-insensitively, `.git` and a trailing slash ignored.
    r = github(hooks, "https://GitHub.com/octo-org/hello.git/")
    assert r.status_code == 202 and r.json() == {"queued": 1}
    assert waiting_syncs(db) == {main: 1}
    # A burst of pushes: still one waiting sync.
    for _ in range(3):
        assert github(hooks, "https://github.com/Octo-Org/Hello").json() == {"queued": 1}
    assert waiting_syncs(db) == {main: 1}


def test_what_matches_nothing_says_so_and_queues_nothing(hooks, db):
    register_http(db, "https://github.com/Octo-Org/Hello")
    assert github(hooks, "https://github.com/Octo-Org/Hello", ref="refs/tags/v1").json() == {
        "queued": 0
    }
    assert github(hooks, "https://github.com/Octo-Org/Hello", ref="refs/heads/nope").json() == {
        "queued": 0
    }
    assert github(hooks, "https://evil.example/Octo-Org/Hello").json() == {"queued": 0}
    assert github(hooks, "ext::sh -c touch% /tmp/x").json() == {"queued": 0}
    assert waiting_syncs(db) == {}


def test_refusals(hooks, make_settings, db):
    register_http(db, "https://github.com/Octo-Org/Hello")
    r = github(hooks, "https://github.com/Octo-Org/Hello", secret="another-secret-0123456")
    assert r.status_code == 401 and set(r.json()) == {"error"}
    unsigned = hooks.post(
        "/api/hooks/github",
        content=payloads.github_push("https://github.com/Octo-Org/Hello"),
        headers={"X-GitHub-Event": "push"},
    )
    assert unsigned.status_code == 401
    assert waiting_syncs(db) == {}
    body = b"not json"
    bad = hooks.post(
        "/api/hooks/github",
        content=body,
        headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sha256_hex(body)},
    )
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    ping = hooks.post(
        "/api/hooks/github",
        content=payloads.GITHUB_PING,
        headers={
            "X-GitHub-Event": "ping",
            "X-Hub-Signature-256": "sha256=" + sha256_hex(payloads.GITHUB_PING),
        },
    )
    assert ping.status_code == 200 and ping.json() == {"message": "pong"}
    assert hooks.post("/api/hooks/sourcehut", content=b"{}").status_code == 404
    with TestClient(create_app(make_settings())) as off:
        r = off.post("/api/hooks/github", content=body)
        assert r.status_code == 404 and set(r.json()) == {"error"}


def test_large_bodies_are_accepted_up_to_githubs_cap(hooks, db):
    register_http(db, "https://github.com/Octo-Org/Hello")
    big = (
        payloads.github_push("https://github.com/Octo-Org/Hello")[:-1]
        + b', "padding": "'
        + b"x" * (3 * 1024 * 1024)
        + b'"}'
    )
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sha256_hex(big)}
    assert hooks.post("/api/hooks/github", content=big, headers=headers).json() == {"queued": 1}


@pytest.mark.parametrize("provider", ["gitlab", "gitea", "bitbucket"])
def test_the_other_providers_end_to_end(hooks, db, provider):
    if provider == "bitbucket":
        rid = register_http(db, "https://bitbucket.org/team/repo")
        body = payloads.bitbucket_push("team/repo", ["main"])
        headers = {"X-Event-Key": "repo:push", "X-Hub-Signature": "sha256=" + sha256_hex(body)}
    elif provider == "gitlab":
        rid = register_http(db, "https://gitlab.example/mike/diaspora")
        body = payloads.gitlab_push("https://gitlab.example/mike/diaspora.git")
        headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    else:
        rid = register_http(db, "https://git.example/gitea/webhooks")
        body = payloads.gitea_push("https://git.example/gitea/webhooks.git")
        headers = {"X-Gitea-Event": "push", "X-Gitea-Signature": sha256_hex(body)}
    r = hooks.post(f"/api/hooks/{provider}", content=body, headers=headers)
    assert r.status_code == 202 and r.json() == {"queued": 1}
    assert waiting_syncs(db) == {rid: 1}


def test_a_push_reaches_the_app_in_seconds(make_settings, receiver, tmp_path):
    """No polling here (the scheduler ticks hourly): only the hook wakes the sync."""
    settings = make_settings(PUSH_WEBHOOK_SECRET=SECRET, SCAN_INTERVAL_MS="3600000")
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    with TestClient(create_app(settings)) as client, BackgroundWorker(settings):
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, repo.url)
        wait_status(client, headers, rid, "synced")
        for i in range(3):
            repo.commit(f"v{i + 2}", {"a.txt": f"change {i}"})
            pushed = time.monotonic()
            assert github(client, repo.url).json() == {"queued": 1}
            wait_until(
                lambda i=i: receiver.state.files.get("a.txt") == f"change {i}".encode(),
                10,
                "the push did not arrive",
                interval=0.02,
            )
            assert time.monotonic() - pushed < 5
