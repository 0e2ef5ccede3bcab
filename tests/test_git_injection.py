"""Git argument and URL injection: refused at the API, and harmless even if it reached git.

Every payload tries to create a marker file; the tests assert it never exists.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from docora.git.command import GitError
from docora.git.mirror import fetch_branch
from docora.git.remote import read_remote_head
from tests.conftest import onboard
from tests.gitrepo import GitRepo


def payloads(marker: Path) -> list[str]:
    touch = f"touch {shlex.quote(str(marker))}"
    return [
        f"ext::sh -c touch% {marker}",
        f"--upload-pack={touch}",
        f"-u{touch}",
        f"--config=core.sshCommand={touch}",
        f"-c core.sshCommand={touch}",
        f"ssh://-oProxyCommand={touch}/x/y",
        f"https://github.com/a/b\n--upload-pack={touch}",
        f"https://github.com/a/b --upload-pack={touch}",
        f"file:///tmp/../{marker}",
        f"https://github.com/a/b;{touch}",
        f"https://github.com/a/$({touch})",
    ]


def try_each(attempt: Callable[[str], Awaitable[None]], payloads: list[str]) -> None:
    async def one_after_another() -> None:
        for payload in payloads:
            await attempt(payload)

    asyncio.run(one_after_another())


def test_api_refuses_every_payload_as_url_or_branch(client, tmp_path):
    marker = tmp_path / "pwned"
    _, headers = onboard(client)
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    for payload in payloads(marker):
        r = client.post("/api/repositories", json={"github_url": payload}, headers=headers)
        assert r.status_code in (400, 422), (payload, r.status_code)
        assert set(r.json()) == {"error"}
        branch_body = {"github_url": repo.url, "branch": payload}
        r = client.post("/api/repositories", json=branch_body, headers=headers)
        assert r.status_code in (400, 422), (payload, r.status_code)
    for branch in ("..", "a/../b", "-x", "main\n-x", "main main"):
        body = {"github_url": repo.url, "branch": branch}
        assert client.post("/api/repositories", json=body, headers=headers).status_code == 422
    assert not marker.exists()


@pytest.mark.parametrize("allow_local", [False, True])
def test_git_layer_executes_nothing_even_without_validation(tmp_path, allow_local):
    """Defence in depth: the URL always follows `--`, and GIT_ALLOW_PROTOCOL shuts out
    ext::, ssh and the rest, so a payload that slipped past validation still runs nothing."""
    marker = tmp_path / "pwned"
    mirror = tmp_path / "mirror.git"

    async def attempt(url: str) -> None:
        with pytest.raises(GitError):
            await read_remote_head(
                url, branch=None, token=None, allow_local=allow_local, timeout_ms=10_000
            )
        with pytest.raises(GitError):
            await fetch_branch(
                mirror,
                url=url,
                branch="main",
                token=None,
                allow_local=allow_local,
                timeout_ms=10_000,
            )

    try_each(attempt, payloads(marker))
    assert not marker.exists()


def test_hostile_branch_names_reach_git_only_as_data(tmp_path):
    marker = tmp_path / "pwned"
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})

    async def attempt(branch: str) -> None:
        with pytest.raises(GitError):
            await read_remote_head(
                repo.url, branch=branch, token=None, allow_local=True, timeout_ms=10_000
            )

    try_each(attempt, payloads(marker))
    assert not marker.exists()
