"""One bare mirror per repository, updated by fetching only the tracked branch."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from docora.git import mirrors
from docora.git.command import GitError, GitErrorKind, run_git_async
from docora.git.hosts import remote_environment
from docora.git.stream import object_exists
from docora.net import Resolver, system_resolver

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def _safe(part: str) -> str:
    cleaned = _UNSAFE.sub("_", part).lstrip(".")
    return cleaned or "_"


def mirror_path(
    base: str | Path, *, url: str, host: str, owner: str, name: str, branch: str
) -> Path:
    """`{base}/{host}/{owner}/{name}/{branch}.git`.

    The branch level keeps two tracked branches of one remote from fetching into the
    same directory at once (each repository row has its own sync lock). Local paths get
    a digest in place of the host, since their owner/name need not be unique.
    """
    if host == "local":
        host = "local-" + hashlib.sha256(url.encode()).hexdigest()[:12]
    parts = [_safe(host), *(_safe(p) for p in owner.split("/")), _safe(name)]
    return Path(base).resolve().joinpath(*parts, _safe(branch.replace("/", "__")) + ".git")


def _clear_stale_locks(mirror: Path) -> None:
    """Remove lock files a killed git left behind.

    Safe because a mirror is only ever written under its write lock (git/mirrors.py), so
    a lock file found there belongs to no running git; without this, one `kill -9` during
    a fetch would fail every later fetch ("shallow.lock: File exists").
    """
    # git takes its locks beside what it writes: top-level files (shallow, HEAD, config,
    # packed-refs) and refs. The object store, which can hold many loose files, is not walked.
    for lock in [*mirror.glob("*.lock"), *(mirror / "refs").rglob("*.lock")]:
        lock.unlink(missing_ok=True)


async def has_commit(mirror: Path, commit: str, *, branch: str | None = None) -> bool:
    """Whether the mirror holds `commit`. The branch's loose ref naming it answers
    without a git process: git writes a ref only once the objects it names are in."""
    if not (mirror / "HEAD").exists():
        return False
    if branch is not None and _ref_names(mirror, branch, commit):
        return True
    return await object_exists(mirror, f"{commit}^{{commit}}")


def _ref_names(mirror: Path, branch: str, commit: str) -> bool:
    try:
        return (mirror / "refs" / "heads" / branch).read_text().strip() == commit
    except (OSError, ValueError):
        return False


def _fetched_commit(mirror: Path) -> str | None:
    """What the fetch just wrote for its one refspec, from FETCH_HEAD (git's documented
    record of a fetch, for scripts): saves a `git rev-parse` process per fetch. None when
    it does not read as expected."""
    try:
        first_line = (mirror / "FETCH_HEAD").read_text(errors="replace").split("\n", 1)[0]
    except OSError:
        return None
    object_id = first_line.split("\t", 1)[0]
    return object_id if _OBJECT_ID.fullmatch(object_id) else None


async def fetch_branch(
    mirror: Path,
    *,
    url: str,
    branch: str,
    token: str | None,
    allow_local: bool,
    timeout_ms: int,
    resolver: Resolver = system_resolver,
    tip: str | None = None,
) -> str:
    """Fetch the branch tip into the mirror (creating it if needed); return its commit.

    `tip`, a commit the caller just read from the remote, is fetched by its id: with no
    refs to match, git skips the ref listing (one request fewer to the host, protocol
    v2). A host that will not serve it (v0 serves advertised tips only; the branch may
    have moved and the commit gone) gets the branch by name instead.

    The host is checked (and git pinned to the checked addresses) at every fetch: DNS may
    have changed since registration."""
    env = await remote_environment(url, token=token, allow_local=allow_local, resolver=resolver)
    async with mirrors.writing(mirror):
        return await _fetch_locked(mirror, env, url, branch, token, timeout_ms, tip)


async def _fetch_locked(
    mirror: Path,
    env: dict[str, str],
    url: str,
    branch: str,
    token: str | None,
    timeout_ms: int,
    tip: str | None,
) -> str:
    secrets = [token] if token else []
    created = not (mirror / "HEAD").exists()
    if created:
        mirror.mkdir(parents=True, exist_ok=True)
        # No template: a mirror needs none of the sample hooks and files git copies.
        await run_git_async(
            ["init", "--quiet", "--bare", "--template=", str(mirror)],
            env=env,
            timeout_ms=timeout_ms,
        )
    ref = f"refs/heads/{branch}"
    _clear_stale_locks(mirror)
    # A new mirror has nothing to maintain: no `git maintenance run --auto` after its
    # first fetch (one process fewer per first sync); later fetches keep it.
    maintenance = "--no-auto-maintenance" if created else "--auto-maintenance"
    args = ["fetch", "--quiet", "--no-tags", "--depth=1", "--force", maintenance]

    async def fetch(source: str) -> None:
        (mirror / "FETCH_HEAD").unlink(missing_ok=True)
        # The URL is an argument, never stored as a remote: nothing about the origin,
        # and certainly no credential, is written into the mirror's config.
        await run_git_async(
            [*args, "--", url, f"+{source}:{ref}"],
            env=env,
            timeout_ms=timeout_ms,
            cwd=str(mirror),
            secrets=secrets,
        )

    async def fetch_tip_or_branch() -> None:
        if tip is None or not _OBJECT_ID.fullmatch(tip):
            return await fetch(ref)
        try:
            await fetch(tip)
        except GitError as exc:
            if exc.kind not in (GitErrorKind.GIT, GitErrorKind.NOT_FOUND):
                raise
            await fetch(ref)

    try:
        await fetch_tip_or_branch()
    except GitError:
        if created:
            shutil.rmtree(mirror, ignore_errors=True)
        raise
    commit = _fetched_commit(mirror)
    if commit is None:
        out = await run_git_async(
            ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
            env=env,
            timeout_ms=timeout_ms,
            cwd=str(mirror),
        )
        commit = out.strip()
    if not commit:
        raise GitError(GitErrorKind.NOT_FOUND, f"branch {branch!r} not found after fetch")
    return commit
