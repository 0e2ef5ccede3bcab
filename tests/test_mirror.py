"""The mirror: fetched by the tip just read when the host serves it, by name otherwise;
what a killed fetch leaves behind is still usable."""

from __future__ import annotations

import asyncio

import pytest

from docora.git.mirror import fetch_branch, has_commit
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo


def fetch(mirror, repo: GitRepo, url: str | None = None, tip: str | None = None) -> str:
    return asyncio.run(
        fetch_branch(
            mirror,
            url=url or repo.url,
            branch="main",
            token=None,
            allow_local=True,
            timeout_ms=20_000,
            tip=tip,
        )
    )


@pytest.mark.parametrize("mode", ["smart", "v0"])
def test_a_known_tip_is_fetched_without_listing_refs_again(tmp_path, mode):
    repo = GitRepo(tmp_path / "srv")
    first = repo.commit("v1", {"a.txt": "a"})
    with GitHttpServer(tmp_path / "srv", passwords=None, mode=mode) as server:
        url = server.url_for(repo.remote)
        assert fetch(tmp_path / "by-name.git", repo, url) == first
        listed = list(server.commands)
        server.commands.clear()
        second = repo.commit("v2", {"b.txt": "b"})
        assert fetch(tmp_path / "by-name.git", repo, url, tip=second) == second
    if mode == "smart":
        assert listed == ["ls-refs", "fetch"] and server.commands == ["fetch"]
    else:  # v0 advertises the refs with every fetch; the tip is among them
        assert listed == server.commands == []


def test_a_tip_the_host_will_not_serve_is_fetched_by_the_branch_name(tmp_path):
    repo = GitRepo(tmp_path / "srv")
    head = repo.commit("v1", {"a.txt": "a"})
    elsewhere = GitRepo(tmp_path / "other").commit("x", {"x.txt": "x"})  # not on the remote
    mirror = tmp_path / "mirror.git"
    with GitHttpServer(tmp_path / "srv", passwords=None) as server:
        assert fetch(mirror, repo, server.url_for(repo.remote), tip=elsewhere) == head
    assert server.commands == ["fetch", "ls-refs", "fetch"]
    assert asyncio.run(has_commit(mirror, head, branch="main"))
    assert not asyncio.run(has_commit(mirror, elsewhere, branch="main"))


def test_has_commit_answers_from_the_branch_ref_or_asks_git(tmp_path):
    repo = GitRepo(tmp_path / "r")
    old = repo.commit("v1", {"a.txt": "a"})
    mirror = tmp_path / "mirror.git"
    fetch(mirror, repo)
    new = repo.commit("v2", {"a.txt": "b"})
    fetch(mirror, repo)
    assert (mirror / "refs" / "heads" / "main").read_text().strip() == new
    assert asyncio.run(has_commit(mirror, new, branch="main"))
    assert asyncio.run(has_commit(mirror, old, branch="main"))  # not the ref: git is asked
    assert asyncio.run(has_commit(mirror, old))
    assert not asyncio.run(has_commit(mirror, "0" * 40, branch="main"))
    assert not asyncio.run(has_commit(tmp_path / "none.git", new, branch="main"))


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
