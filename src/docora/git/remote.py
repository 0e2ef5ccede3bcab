"""What a remote says about itself: `git ls-remote` for the default branch and tips."""

from __future__ import annotations

import asyncio
import logging

import msgspec

from docora.git.command import GitError, run_git_async
from docora.git.hosts import remote_environment
from docora.git.refs import ProtocolError, RefListing, RemoteHead, choose_head, parse_ls_remote
from docora.git.smart_http import SmartHttpRefs, ls_remote_patterns
from docora.net import Resolver, system_resolver

log = logging.getLogger(__name__)

__all__ = ["AccessCheck", "RemoteHead", "check_access", "read_remote_head"]


async def read_remote_head(
    url: str,
    *,
    branch: str | None,
    token: str | None,
    allow_local: bool,
    timeout_ms: int,
    resolver: Resolver = system_resolver,
    refs: SmartHttpRefs | None = None,
) -> RemoteHead:
    """The tracked branch (given, or the remote's default) and its tip: read in-process
    over smart HTTP when `refs` is given and the remote is http(s), else (and whenever the
    in-process reader does not understand the answer) with one `git ls-remote`.

    Raises GitError(NOT_FOUND) when a named branch does not exist in a non-empty repository.
    """
    listing = None
    if refs is not None and refs.speaks(url):
        try:
            listing = await refs.list_refs(url, branch=branch, token=token, timeout_ms=timeout_ms)
        except ProtocolError as exc:
            log.debug("smart-HTTP refs of %s not understood (%s); asking git", url, exc)
    if listing is None:
        listing = await ls_remote(
            url,
            branch=branch,
            token=token,
            allow_local=allow_local,
            timeout_ms=timeout_ms,
            resolver=resolver,
        )
    return choose_head(listing, branch)


async def ls_remote(
    url: str,
    *,
    branch: str | None,
    token: str | None,
    allow_local: bool,
    timeout_ms: int,
    resolver: Resolver = system_resolver,
) -> RefListing:
    """`git ls-remote --symref` for HEAD and the branch."""
    env = await remote_environment(url, token=token, allow_local=allow_local, resolver=resolver)
    out = await run_git_async(
        ["ls-remote", "--symref", "--", url, *ls_remote_patterns(branch)],
        env=env,
        timeout_ms=timeout_ms,
        secrets=[token] if token else [],
    )
    return parse_ls_remote(out)


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
    refs: SmartHttpRefs | None = None,
) -> AccessCheck:
    """Can this token (or anyone, without one) read the repository, and is a token needed?

    With a token, an anonymous probe runs alongside: `is_private` means the token was needed.
    """
    common = {
        "branch": branch,
        "allow_local": allow_local,
        "timeout_ms": timeout_ms,
        "resolver": resolver,
        "refs": refs,
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
