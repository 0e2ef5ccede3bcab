"""Hostile repositories: odd names, links out of the tree, oversized files, submodules."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e import register_app, resync, wait_status, wait_synced, watch
from tests.gitrepo import GIT_ENV, GitRepo, git


@pytest.fixture
def settings(make_settings):
    return make_settings(MAX_FILE_SIZE_BYTES="1000", RETRY_BASE_DELAY_MS="100")


def _quote(path: bytes) -> bytes:
    """fast-import's C-style quoting: any byte can be a path."""
    out = b'"'
    for byte in path:
        char = bytes([byte])
        if char in b'"\\':
            out += b"\\" + char
        elif byte < 0x20 or byte >= 0x80:
            out += b"\\%03o" % byte
        else:
            out += char
    return out + b'"'


def _raw_commit(remote, entries: list[tuple[bytes, bytes, bytes]]) -> None:
    """One commit with exactly these (mode, path bytes, content) entries; for a gitlink
    (160000) the content is the commit id."""
    git("init", "--quiet", "--bare", "--initial-branch", "main", str(remote))
    stream = b"commit refs/heads/main\ncommitter T <t@example.com> 1700000000 +0000\n"
    stream += b"data 7\nhostile\n"
    for mode, path, content in entries:
        if mode == b"160000":
            stream += b"M 160000 " + content + b" " + _quote(path) + b"\n"
        else:
            stream += b"M " + mode + b" inline " + _quote(path) + b"\n"
            stream += b"data %d\n" % len(content) + content + b"\n"
    env = {**os.environ, **GIT_ENV}
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=remote,
        input=stream,
        env=env,
        check=True,
        capture_output=True,
    )


def test_hostile_names_and_links(client, worker, receiver, tmp_path):
    remote = tmp_path / "acme" / "hostile.git"
    long_name = ("d" * 200 + "/") * 10 + "x.txt"
    entries = [
        (b"100644", b"normal.txt", b"ok\n"),
        (b"100644", b"new\nline.txt", b"newline in the name\n"),
        (b"100644", b"quote\"s and 'single'.txt", b"quotes\n"),
        (b"100644", b"back\\slash.txt", b"backslash\n"),
        (b"100644", b"tab\there.txt", b"tab\n"),
        (b"100644", "ünïcødé ✓.txt".encode(), b"unicode\n"),
        (b"100644", long_name.encode(), b"long path\n"),
        (b"100644", b"latin1-\xe9.txt", b"not UTF-8 name\n"),
        (b"120000", b"passwd", b"/etc/passwd"),
        (b"120000", b"etc-dir", b"/etc"),
        (b"100644", b"big.txt", b"x" * 5000),
        (b"160000", b"vendor", b"0" * 39 + b"1"),
    ]
    _raw_commit(remote, entries)
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, f"file://{remote}")
    status = wait_status(client, headers, rid, "synced")
    expected = {
        "normal.txt": b"ok\n",
        "new\nline.txt": b"newline in the name\n",
        "quote\"s and 'single'.txt": b"quotes\n",
        "back\\slash.txt": b"backslash\n",
        "tab\there.txt": b"tab\n",
        "ünïcødé ✓.txt": b"unicode\n",
        long_name: b"long path\n",
    }
    assert receiver.state.files == expected
    assert all(e.verified for e in receiver.state.events)
    assert receiver.state.shas["normal.txt"] == hashlib.sha256(b"ok\n").hexdigest()
    reasons = {s["path"]: s["reason"] for s in status["skipped_files"]}
    assert reasons["passwd"] == "symlink" and reasons["etc-dir"] == "symlink"
    assert reasons["vendor"] == "submodule" and reasons["big.txt"].startswith("larger than")
    assert any(r == "path is not valid UTF-8" for r in reasons.values())
    # Nothing outside the repository was read: /etc/passwd's content never travelled.
    passwd = Path("/etc/passwd").read_bytes()
    assert all(passwd not in e.raw for e in receiver.state.events)


def test_empty_repository_syncs_to_nothing_then_follows_the_first_commit(
    client, worker, receiver, tmp_path
):
    """A repository with no commits (its default branch is unborn): no events, no error;
    the first push is delivered like any change."""
    repo = GitRepo(tmp_path / "x", name="empty")
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    status = wait_status(client, headers, rid, "synced")
    assert status["commit_sha"] is None and status["last_error"] is None
    assert status["files_delivered"] == 0 and receiver.state.events == []
    head = repo.commit("first", {"a.txt": "a"})
    resync(client, headers, rid)
    wait_synced(client, headers, rid, head)
    assert receiver.state.files == {"a.txt": b"a"}
