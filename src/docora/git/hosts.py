"""Which address git may connect to: the SSRF rules for git hosts (SPEC section 6).

Before every command that talks to a remote, the host is resolved and every address
checked against the table webhook targets use (docora.net), unless
ALLOW_LOCAL_REPOSITORIES is on. git is then told to connect to exactly those addresses
(`http.curloptResolve`, git >= 2.37), so a name that re-resolves elsewhere between the
check and the connection (DNS rebinding) gains nothing; redirects are never followed
(git_environment). With an older git the check still runs before each command, and a
warning says that the rebinding window is open.
"""

from __future__ import annotations

import functools
import logging
import re
import subprocess
from urllib.parse import urlsplit

from docora.git.command import CLASS_MESSAGES, GitError, GitErrorKind, git_environment
from docora.net import RefusedAddress, Resolver, checked_addresses, ip_literal, system_resolver

log = logging.getLogger(__name__)

PINNING_SINCE = (2, 37)
DEFAULT_PORTS = {"https": 443, "http": 80}


@functools.cache
def git_can_pin() -> bool:
    """Whether this machine's git honours `http.curloptResolve`."""
    out = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+)\.(\d+)", out)
    supported = bool(match) and (int(match[1]), int(match[2])) >= PINNING_SINCE
    if not supported:
        log.warning(
            "git %s cannot pin connections (http.curloptResolve needs 2.37): git hosts are "
            "checked before each command but could re-resolve before git connects",
            out.strip() or "(unknown version)",
        )
    return supported


def endpoint(url: str) -> tuple[str, int] | None:
    """(host, port) git will connect to, or None for a local repository."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    return parts.hostname or "", parts.port or DEFAULT_PORTS[scheme]


def resolve_entry(host: str, port: int, addresses: list[str]) -> str:
    """One `http.curloptResolve` entry: HOST:PORT:ADDRESS[,ADDRESS], IPv6 in brackets."""
    listed = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
    return f"{host}:{port}:{listed}"


async def remote_environment(
    url: str,
    *,
    token: str | None,
    allow_local: bool,
    resolver: Resolver = system_resolver,
) -> dict[str, str]:
    """git's environment for one command against `url`, connecting only to checked addresses.

    Raises GitError(REFUSED) when the host does not resolve to public addresses; the
    client is told the class only (which address a name has is not theirs to learn).
    """
    target = endpoint(url)
    if target is None:
        return git_environment(url=url, token=token, allow_local=allow_local)
    host, port = target
    try:
        addresses = await checked_addresses(
            host, port, allow_private=allow_local, resolver=resolver, what="github_url"
        )
    except RefusedAddress as exc:
        message = CLASS_MESSAGES[GitErrorKind.REFUSED]
        raise GitError(GitErrorKind.REFUSED, message, detail=str(exc)) from None
    # A literal address needs no pin (git resolves nothing); a name is pinned when git can.
    pinned = []
    if ip_literal(host) is None and git_can_pin():
        pinned.append(resolve_entry(host, port, addresses))
    return git_environment(url=url, token=token, allow_local=allow_local, pinned=pinned)
