"""The test LFS server (tests/lfs_server.py) checked against the real client: `git lfs
push` through it and `git clone` back give the same bytes, so the tests that use it test
Docora against the protocol git-lfs speaks."""

from __future__ import annotations

import hashlib
import os

from tests.githttp import GitHttpServer
from tests.gitrepo import git
from tests.lfs_server import LfsStore
from tests.tools import require_tool

LFS_CLIENT = (
    "-c",
    "filter.lfs.process=git-lfs filter-process",
    "-c",
    "filter.lfs.required=true",
    "-c",
    "lfs.locksverify=false",
)


def test_git_lfs_pushes_and_clones_through_the_test_server(tmp_path):
    require_tool("git-lfs", "apt-get install git-lfs")
    store = LfsStore(tmp_path / "lfs")
    (tmp_path / "srv" / "acme").mkdir(parents=True)
    git(
        "init",
        "--quiet",
        "--bare",
        "--initial-branch",
        "main",
        str(tmp_path / "srv/acme/media.git"),
    )
    data = os.urandom(300_000)
    with GitHttpServer(tmp_path / "srv", {"s3cret"}, lfs=store) as server:
        url = server.url_for(tmp_path / "srv/acme/media.git").replace("://", "://docora:s3cret@")
        work = tmp_path / "work"
        git("init", "--quiet", "--initial-branch", "main", str(work))
        git(*LFS_CLIENT, "lfs", "track", "*.bin", cwd=work)
        (work / "big.bin").write_bytes(data)
        (work / "small.txt").write_text("plain\n")
        git(*LFS_CLIENT, "add", ".", cwd=work)
        git(*LFS_CLIENT, "commit", "--quiet", "-m", "lfs", cwd=work)
        pointer = git("cat-file", "blob", "HEAD:big.bin", cwd=work)
        assert pointer.startswith("version https://git-lfs.github.com/spec/v1\n")
        git(*LFS_CLIENT, "push", "--quiet", url, "main", cwd=work)
        oid = hashlib.sha256(data).hexdigest()
        assert store.path(oid).read_bytes() == data
        assert any(b["operation"] == "upload" for b in store.batches)
        clone = tmp_path / "clone"
        git(*LFS_CLIENT, "clone", "--quiet", url, str(clone))
        assert (clone / "big.bin").read_bytes() == data
        assert store.downloads == [oid]
        assert "s3cret" in server.seen_passwords
