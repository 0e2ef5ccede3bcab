"""The mirror a killed fetch leaves behind is still usable."""

from __future__ import annotations

import asyncio

from docora.git.mirror import fetch_branch
from tests.gitrepo import GitRepo


def fetch(mirror, repo: GitRepo) -> str:
    return asyncio.run(
        fetch_branch(
            mirror, url=repo.url, branch="main", token=None, allow_local=True, timeout_ms=20_000
        )
    )


def test_lock_files_of_a_killed_fetch_do_not_block_the_next(tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    mirror = tmp_path / "mirror.git"
    fetch(mirror, repo)
    # What `kill -9` during a fetch leaves: git's lock files beside what it was writing.
    for lock in ("shallow.lock", "packed-refs.lock", "refs/heads/main.lock"):
        (mirror / lock).write_text("")
    head = repo.commit("v2", {"b.txt": "b"})
    assert fetch(mirror, repo) == head
    assert not list(mirror.glob("*.lock")) and not list((mirror / "refs").rglob("*.lock"))
