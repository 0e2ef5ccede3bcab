"""What a remote says about itself: `git ls-remote` for the default branch and tips."""

from __future__ import annotations

import asyncio

import msgspec

from docora.git.command import GitError, GitErrorKind, run_git_async
from docora.git.hosts import remote_environment
from docora.net import Resolver, system_resolver

FALLBACK_BRANCH = "main"


class RemoteHead(msgspec.Struct, frozen=True):
    branch: str
    # None when the branch has no commits yet (an empty repository).
    commit_sha: str | None


def parse_ls_remote(output: str, branch: str | None) -> RemoteHead:
    default_branch: str | None = None
    tips: dict[str, str] = {}
    for line in output.splitlines():
        left, _, ref = line.partition("\t")
        if left.startswith("ref: ") and ref == "HEAD":
            default_branch = left[5:].removeprefix("refs/heads/")
        elif ref.startswith("refs/heads/"):
            tips[ref.removeprefix("refs/heads/")] = left
        elif ref == "HEAD" and default_branch is not None:
            tips.setdefault(default_branch, left)
    chosen = branch or default_branch or FALLBACK_BRANCH
    return RemoteHead(branch=chosen, commit_sha=tips.get(chosen))


async def read_remote_head(
    url: str,
    *,
    branch: str | None,
    token: str | None,
    allow_local: bool,
    timeout_ms: int,
    resolver: Resolver = system_resolver,
) -> RemoteHead:
    """One `git ls-remote`: the tracked branch (given, or the remote's default) and its tip.

    Raises GitError(NOT_FOUND) when a named branch does not exist in a non-empty repository.
    """
    patterns = ["HEAD", f"refs/heads/{branch}"] if branch else ["HEAD"]
    env = await remote_environment(url, token=token, allow_local=allow_local, resolver=resolver)
    out = await run_git_async(
        ["ls-remote", "--symref", "--", url, *patterns],
        env=env,
        timeout_ms=timeout_ms,
        secrets=[token] if token else [],
    )
    head = parse_ls_remote(out, branch)
    if branch and head.commit_sha is None and out.strip():
        raise GitError(GitErrorKind.NOT_FOUND, f"branch {branch!r} does not exist")
    if not branch and head.commit_sha is None and out.strip():
        raise GitError(
            GitErrorKind.NOT_FOUND,
            "the remote does not advertise its default branch; register with an explicit branch",
        )
    return head


class AccessCheck(msgspec.Struct, frozen=True):
    head: RemoteHead
    is_private: bool


async def check_access(
    url: str,
    *,
    branch: str | None,
    token: str | None,
    allow_local: bool,
    timeout_ms: int,
    resolver: Resolver = system_resolver,
) -> AccessCheck:
    """Can this token (or anyone, without one) read the repository, and is a token needed?

    With a token, an anonymous probe runs alongside: `is_private` means the token was needed.
    """
    common = {
        "branch": branch,
        "allow_local": allow_local,
        "timeout_ms": timeout_ms,
        "resolver": resolver,
    }
    if token is None:
        return AccessCheck(await read_remote_head(url, token=None, **common), is_private=False)
    with_token, anonymous = await asyncio.gather(
        read_remote_head(url, token=token, **common),
        read_remote_head(url, token=None, **common),
        return_exceptions=True,
    )
    for outcome in (with_token, anonymous):
        if isinstance(outcome, BaseException) and not isinstance(outcome, GitError):
            raise outcome
    if isinstance(with_token, BaseException):
        raise with_token
    return AccessCheck(with_token, is_private=isinstance(anonymous, GitError))
