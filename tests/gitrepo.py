"""Real git repositories for tests: a work tree pushed to a bare remote in a temp dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Docora Tests",
    "GIT_AUTHOR_EMAIL": "tests@example.com",
    "GIT_COMMITTER_NAME": "Docora Tests",
    "GIT_COMMITTER_EMAIL": "tests@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path | None = None, input: bytes | None = None) -> str:
    env = {**os.environ, **GIT_ENV}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, input=input, capture_output=True, check=False
    )
    if result.returncode:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout.decode(errors="replace")


class GitRepo:
    """`work` is a clone of the bare `remote`; commit() pushes to it."""

    def __init__(self, root: Path, name: str = "project", branch: str = "main") -> None:
        self.root = root
        self.branch = branch
        self.remote = root / f"{name}.git"
        self.work = root / f"{name}-work"
        git("init", "--quiet", "--bare", "--initial-branch", branch, str(self.remote))
        git("init", "--quiet", "--initial-branch", branch, str(self.work))
        git("remote", "add", "origin", str(self.remote), cwd=self.work)

    @property
    def url(self) -> str:
        return f"file://{self.remote}"

    def write(self, path: str, content: bytes | str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def delete(self, path: str) -> None:
        git("rm", "--quiet", "--", path, cwd=self.work)

    def rename(self, old: str, new: str) -> None:
        (self.work / new).parent.mkdir(parents=True, exist_ok=True)
        git("mv", "--", old, new, cwd=self.work)

    def commit(self, message: str = "change", files: dict[str, bytes | str] | None = None) -> str:
        for path, content in (files or {}).items():
            self.write(path, content)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--allow-empty", "-m", message, cwd=self.work)
        git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{self.branch}", cwd=self.work)
        return self.head()

    def commit_staged(self, message: str) -> str:
        """Commit the index as it is (keeps entries `add --all` would drop, like gitlinks)."""
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{self.branch}", cwd=self.work)
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work).strip()


def fast_import(
    remote: Path,
    files,
    *,
    branch: str = "main",
    message: str = "generated",
    parent: str | None = None,
    deletes: tuple[str, ...] = (),
) -> str:
    """Write one commit of `files` ((path, bytes) pairs, streamed) straight into a bare
    repository with `git fast-import`: 100k files in seconds, no work tree."""
    if not (remote / "HEAD").exists():
        git("init", "--quiet", "--bare", "--initial-branch", branch, str(remote))
    env = {**os.environ, **GIT_ENV}
    proc = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"],
        cwd=remote,
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    write = proc.stdin.write
    text = message.encode()
    write(f"commit refs/heads/{branch}\n".encode())
    write(b"committer Docora Tests <tests@example.com> 1700000000 +0000\n")
    write(b"data %d\n%s\n" % (len(text), text))
    if parent:
        write(f"from {parent}\n".encode())
    for path in deletes:
        write(f"D {path}\n".encode())
    for path, content in files:
        write(f"M 100644 inline {path}\n".encode())
        write(b"data %d\n" % len(content))
        write(content)
        write(b"\n")
    write(b"done\n")
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(proc.stderr.read().decode())  # type: ignore[union-attr]
    return git("rev-parse", f"refs/heads/{branch}", cwd=remote).strip()
