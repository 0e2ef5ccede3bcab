"""The in-process smart-HTTP ref reader (git/smart_http.py) against `git ls-remote`, side by
side on real remotes served by `git http-backend` from a loopback server: every case must
give the same answer (the same head, or a GitError of the same class)."""

from __future__ import annotations

import asyncio

import pytest

from docora.git.command import GitError, GitErrorKind
from docora.git.refs import ProtocolError, choose_head, parse_advertisement, parse_ls_refs
from docora.git.remote import read_remote_head
from docora.git.smart_http import SmartHttpRefs
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo, git

TOKEN = "secret-token-1234"


async def side_by_side(
    url: str,
    branch: str | None,
    token: str | None = None,
    timeout_ms=10_000,
    refs: SmartHttpRefs | None = None,
):
    """(in-process outcome, git's outcome): a RemoteHead or the GitErrorKind raised. A
    reader passed in (one that knows the origin speaks v2) is used and left open."""
    shared = refs is not None
    refs = refs or SmartHttpRefs(allow_local=True)

    async def in_process():
        listing = await refs.list_refs(url, branch=branch, token=token, timeout_ms=timeout_ms)
        return choose_head(listing, branch)

    async def with_git():
        return await read_remote_head(
            url, branch=branch, token=token, allow_local=True, timeout_ms=timeout_ms
        )

    outcomes = []
    for attempt in (in_process, with_git):
        try:
            outcomes.append(await attempt())
        except GitError as exc:
            outcomes.append(exc.kind)
    if not shared:
        await refs.aclose()
    return outcomes


@pytest.fixture
def remotes(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    repo = GitRepo(root, "project", branch="trunk")
    first = repo.commit("one", {"a.txt": "a"})
    git("push", "--quiet", "origin", "HEAD:refs/heads/dev", cwd=repo.work)
    git("push", "--quiet", "origin", "HEAD:refs/heads/dev-old", cwd=repo.work)
    git("tag", "v1", cwd=repo.work)
    git("push", "--quiet", "origin", "v1", cwd=repo.work)
    second = repo.commit("two", {"b.txt": "b"})
    git("init", "--quiet", "--bare", str(root / "empty.git"))
    detached = GitRepo(root, "detached")
    detached.commit("one", {"x": "x"})
    git("update-ref", "--no-deref", "HEAD", detached.head(), cwd=detached.remote)
    return root, first, second


@pytest.mark.parametrize(
    ("mode", "warm"), [("smart", False), ("smart", True), ("v0", False), ("v0", True)]
)
async def test_same_answers_as_git_ls_remote(remotes, mode, warm):
    """warm: one reader for every case, after a first read of the origin, so that over v2
    each case is first asked with the ls-refs POST alone."""
    root, first, second = remotes
    refs = SmartHttpRefs(allow_local=True) if warm else None
    with GitHttpServer(root, passwords=None, mode=mode) as server:
        base = f"http://127.0.0.1:{server.server_port}"
        if refs is not None:
            await refs.list_refs(f"{base}/project.git", branch=None, token=None, timeout_ms=5000)
        cases = {
            "default branch": (f"{base}/project.git", None),
            "named branch": (f"{base}/project.git", "dev"),
            "branch whose name prefixes another": (f"{base}/project.git/", "dev"),
            "missing branch": (f"{base}/project.git", "nope"),
            "empty repository": (f"{base}/empty.git", None),
            "empty repository, named branch": (f"{base}/empty.git", "main"),
            "detached HEAD": (f"{base}/detached.git", None),
            "missing repository": (f"{base}/absent.git", None),
        }
        answers = {}
        for name, (url, branch) in cases.items():
            mine, gits = await side_by_side(url, branch, refs=refs)
            assert mine == gits, name
            answers[name] = mine
    if refs is not None:
        await refs.aclose()
    assert answers["default branch"].branch == "trunk"
    assert answers["default branch"].commit_sha == second
    assert answers["named branch"].commit_sha == first
    assert answers["missing branch"] is GitErrorKind.NOT_FOUND
    assert answers["empty repository"].commit_sha is None
    assert answers["detached HEAD"] is GitErrorKind.NOT_FOUND
    assert answers["missing repository"] is GitErrorKind.NOT_FOUND


async def test_credentials_sent_as_git_sends_them(remotes):
    root, _, second = remotes
    with GitHttpServer(root, passwords={TOKEN}) as server:
        url = server.url_for(root / "project.git")
        mine, gits = await side_by_side(url, None, token=TOKEN)
        assert mine == gits and mine.commit_sha == second
        assert set(server.seen_passwords) == {TOKEN}
        for token in (None, "wrong-token-5678"):
            mine, gits = await side_by_side(url, None, token=token)
            assert mine == gits == GitErrorKind.AUTH


async def test_redirect_is_refused_as_git_refuses_it(remotes):
    root, _, _ = remotes
    with GitHttpServer(root, passwords=None, mode="redirect") as server:
        mine, gits = await side_by_side(server.url_for(root / "project.git"), None)
    assert mine == gits == GitErrorKind.GIT


async def test_timeout_as_git_times_out(remotes):
    root, _, _ = remotes
    with GitHttpServer(root, passwords=None, mode="hang") as server:
        url = server.url_for(root / "project.git")
        mine, gits = await side_by_side(url, None, timeout_ms=700)
    assert mine == gits == GitErrorKind.TIMEOUT


async def test_unreachable_host_is_a_network_failure(remotes):
    mine, gits = await side_by_side("http://127.0.0.1:9/project.git", None)
    assert mine == gits == GitErrorKind.NETWORK


async def test_dumb_http_is_left_to_git(remotes):
    root, _, second = remotes
    git("update-server-info", cwd=root / "project.git")
    with GitHttpServer(root, passwords=None, mode="dumb") as server:
        url = server.url_for(root / "project.git")
        refs = SmartHttpRefs(allow_local=True)
        with pytest.raises(ProtocolError):
            await refs.list_refs(url, branch="trunk", token=None, timeout_ms=5000)
        # read_remote_head falls back to `git ls-remote`, which speaks dumb HTTP.
        head = await read_remote_head(
            url, branch="trunk", token=None, allow_local=True, timeout_ms=5000, refs=refs
        )
        await refs.aclose()
    assert head.commit_sha == second


async def test_connections_are_kept_alive_between_checks(remotes):
    root, _, second = remotes
    with GitHttpServer(root, passwords=None) as server:
        url = server.url_for(root / "project.git")
        refs = SmartHttpRefs(allow_local=True)
        heads = await asyncio.gather(
            *(refs.list_refs(url, branch=None, token=None, timeout_ms=5000) for _ in range(4))
        )
        for _ in range(5):
            await refs.list_refs(url, branch=None, token=None, timeout_ms=5000)
        idle = sum(len(queue) for queue in refs._transport._idle.values())
        await refs.aclose()
    assert all(choose_head(h, None).commit_sha == second for h in heads)
    assert 1 <= idle <= 4  # later checks reused the first ones' connections


async def test_an_origin_known_to_speak_v2_is_asked_in_one_request(remotes):
    root, _, second = remotes
    with GitHttpServer(root, passwords={TOKEN}) as server:
        url = server.url_for(root / "project.git")
        refs = SmartHttpRefs(allow_local=True)
        for _ in range(3):
            listing = await refs.list_refs(url, branch=None, token=TOKEN, timeout_ms=5000)
            assert choose_head(listing, None).commit_sha == second
        first_read, later = server.seen[:2], server.seen[2:]
        # A refused token is asked the full way: the same answers classify it as before.
        server.seen.clear()
        with pytest.raises(GitError) as caught:
            await refs.list_refs(url, branch=None, token="wrong-token-5678", timeout_ms=5000)
        refused = list(server.seen)
        # The server stops speaking v2: the reader notices and reads v0 as before.
        server.mode = "v0"
        server.seen.clear()
        listing = await refs.list_refs(url, branch=None, token=TOKEN, timeout_ms=5000)
        await refs.aclose()
    assert [method for method, _, _ in first_read] == ["GET", "POST"]
    assert [method for method, _, _ in later] == ["POST", "POST"]
    assert caught.value.kind is GitErrorKind.AUTH
    assert [method for method, _, _ in refused] == ["POST", "GET"]
    assert choose_head(listing, None).commit_sha == second
    assert [method for method, _, _ in server.seen] == ["POST", "GET"]


async def test_plain_http_needs_local_repositories_allowed():
    refs = SmartHttpRefs(allow_local=False)
    with pytest.raises(GitError) as caught:
        await refs.list_refs("http://127.0.0.1:9/x.git", branch=None, token=None, timeout_ms=500)
    await refs.aclose()
    assert caught.value.kind is GitErrorKind.GIT


async def test_hosts_are_checked_before_connecting():
    async def loopback(host, port):
        return ["127.0.0.1"]

    refs = SmartHttpRefs(allow_local=False, resolver=loopback)
    with pytest.raises(GitError) as caught:
        await refs.list_refs(
            "https://git.example.com/a/b.git", branch=None, token=None, timeout_ms=500
        )
    await refs.aclose()
    assert caught.value.kind is GitErrorKind.REFUSED


def test_advertisements_parse_with_and_without_service_header():
    v2 = b"001e# service=git-upload-pack\n0000000eversion 2\n0013ls-refs=unborn\n0000"
    assert parse_advertisement(v2).capabilities == ["ls-refs=unborn"]
    assert parse_advertisement(b"000eversion 2\n000cls-refs\n0000").version == 2
    oid = "a" * 40
    line = f"{oid} HEAD\0side-band symref=HEAD:refs/heads/x\n".encode()
    v0 = b"001e# service=git-upload-pack\n0000" + b"%04x" % (len(line) + 4) + line + b"0000"
    listing = parse_advertisement(v0).listing
    assert listing.head_target == "refs/heads/x" and listing.tips == {"HEAD": oid}
    with pytest.raises(ProtocolError):
        parse_advertisement(b"<html>not git</html>")
    with pytest.raises(ProtocolError):
        parse_ls_refs(b"000dERR nope\n")
