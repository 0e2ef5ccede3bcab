"""Running git: a hardened environment, credentials through it, classified errors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import signal
from collections.abc import Sequence
from enum import StrEnum
from urllib.parse import urlsplit

from docora.errors import DocoraError
from docora.git.urls import on_domain


class GitErrorKind(StrEnum):
    AUTH = "auth"
    NOT_FOUND = "not_found"
    NETWORK = "network"
    TIMEOUT = "timeout"
    REFUSED = "refused_address"
    LFS = "lfs"  # a Git LFS object missing, refused or not matching its pointer
    GIT = "git"


AUTH_MESSAGE = "the host refused the credentials (token missing, wrong, expired or revoked)"
# What a client is told for each class of failure: never a remote's own words, which
# could carry whatever a hostile or internal server chooses to say.
CLASS_MESSAGES = {
    GitErrorKind.AUTH: AUTH_MESSAGE,
    GitErrorKind.NOT_FOUND: "repository not found (or not readable without credentials)",
    GitErrorKind.NETWORK: "could not connect to the git host",
    GitErrorKind.TIMEOUT: "the git host did not answer in time",
    GitErrorKind.REFUSED: "the git host is refused: it must resolve to public addresses only",
    GitErrorKind.LFS: "a Git LFS object could not be downloaded",
    GitErrorKind.GIT: "git failed",
}


class GitError(DocoraError):
    """A failed git command. `message` is safe to show to clients: the failure class, or
    Docora's own words; `detail` is git's redacted output, for the operator's logs only."""

    def __init__(self, kind: GitErrorKind, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail


_PATTERNS: tuple[tuple[GitErrorKind, re.Pattern[str]], ...] = (
    (
        GitErrorKind.AUTH,
        re.compile(
            r"authentication failed|could not read (username|password)|terminal prompts disabled"
            r"|permission denied|returned error: 40[13]|invalid credentials|access denied",
            re.I,
        ),
    ),
    (
        GitErrorKind.NOT_FOUND,
        re.compile(
            r"repository .*not found|not found|does not appear to be a git repository"
            r"|returned error: 404|no such file or directory",
            re.I,
        ),
    ),
    (
        GitErrorKind.NETWORK,
        re.compile(
            r"could not resolve|connection refused|failed to connect|connection timed out"
            r"|network is unreachable|ssl|tls|empty reply|connection reset|couldn't connect"
            r"|returned error: 5\d\d",
            re.I,
        ),
    ),
)
_URL_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def classify(stderr: str) -> GitErrorKind:
    for kind, pattern in _PATTERNS:
        if pattern.search(stderr):
            return kind
    return GitErrorKind.GIT


def failure(stderr: str, command: str, secrets: Sequence[str] = ()) -> GitError:
    """The GitError for a failed git command: the class for clients, git's redacted words
    for the logs."""
    kind = classify(stderr)
    message = CLASS_MESSAGES[kind]
    if kind is GitErrorKind.GIT:
        message = f"git {command} failed"
    return GitError(kind, message, detail=redact(stderr, secrets) or None)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(r"\1***@", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines)[:500]


def authorization(url: str, token: str) -> str:
    """The `Authorization` value git sends for `token` to the host of `url` (Basic).

    GitHub tokens never contain ':'; elsewhere `user:password` is basic credentials, and a
    bare token goes as the password of the user name that host expects."""
    host = urlsplit(url).hostname or ""
    username, sep, password = token.partition(":")
    if not sep or on_domain(host, "github.com"):
        username, password = _username_for(host), token
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {pair}"


def _username_for(host: str) -> str:
    """The user name a host expects beside a bare token. GitLab ignores the name for
    personal access tokens but needs `oauth2` for OAuth tokens; self-hosted GitLab users
    with OAuth tokens pass `oauth2:<token>` themselves."""
    if on_domain(host, "gitlab.com"):
        return "oauth2"
    if on_domain(host, "bitbucket.org"):
        return "x-token-auth"
    return "x-access-token"


# git's memory, bounded whatever the repository holds (tests/test_git_memory.py; with a
# 500 MB blob, bench/throughput.py --huge, no git process took more than 68 MB):
# - a fetch always keeps the pack (index-pack) rather than exploding few objects into
#   loose files, which git reads by mapping each whole;
# - objects above 16 MB are streamed by index-pack and cat-file, never held whole, and
#   never delta-compressed on our side;
# - packs are mapped 16 MB at a time, 64 MB at most: git's resident memory no longer grows
#   with the pack (a 53 MB pack read through was 53 MB of git's memory).
MEMORY_BOUNDS = (
    ("transfer.unpackLimit", "1"),
    ("core.bigFileThreshold", "16m"),
    ("core.packedGitWindowSize", "16m"),
    ("core.packedGitLimit", "64m"),
)


def git_environment(
    *,
    url: str = "",
    token: str | None = None,
    allow_local: bool = False,
    pinned: Sequence[str] = (),
) -> dict[str, str]:
    """The whole environment git runs with.

    The token travels as an http.extraHeader set through GIT_CONFIG_* variables, so it is
    never in argv, in a URL, or in any config file on disk. User and system config are
    ignored (no insteadOf tricks), prompts are off, and only https (plus file/http when
    local repositories are allowed) may be spoken: `ext::` and friends are refused by git.
    Redirects are never followed, and `pinned` (`http.curloptResolve` entries, see
    git/hosts.py) makes git connect to addresses that were checked, not whatever DNS
    says a moment later.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_ALLOW_PROTOCOL": "https:http:file" if allow_local else "https",
    }
    config = [
        ("credential.helper", ""),
        ("core.askPass", "/bin/false"),
        # git's default ("initial") follows a redirect of the first request anywhere.
        ("http.followRedirects", "false"),
        *MEMORY_BOUNDS,
    ]
    config.extend(("http.curloptResolve", entry) for entry in pinned)
    if token:
        parts = urlsplit(url)
        # Scoped to the repository's origin: a redirect elsewhere never carries the token.
        scope = f"{parts.scheme}://{parts.netloc}/"
        config.append((f"http.{scope}.extraHeader", f"Authorization: {authorization(url, token)}"))
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


async def run_git_async(
    args: Sequence[str],
    *,
    env: dict[str, str],
    timeout_ms: int,
    cwd: str | None = None,
    secrets: Sequence[str] = (),
) -> str:
    """Run git to completion and return stdout; raise GitError on failure.

    An asyncio subprocess, like the streaming commands (git/stream.py): started with
    vfork and exec, its exit awaited by the event loop's child watcher. sh, which ran
    these before, forks, starts threads and polls for every command: 9 ms of worker
    CPU each, a quarter of a tiny repository's first sync (docs/performance.md, "Many
    repositories"); sh stays for scripting git synchronously (docora demo). A command
    past its deadline, or whose caller is cancelled, is killed.
    """
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # Its own process group, so that a kill reaches the helpers it starts too
        # (git-remote-http): one left alive would hold the pipes, and the wait, open.
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            out, err = await proc.communicate()
    except TimeoutError:
        message = f"git {args[0]} timed out after {timeout_ms} ms"
        raise GitError(GitErrorKind.TIMEOUT, message) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    if proc.returncode != 0:
        raise failure(err.decode(errors="replace"), args[0], secrets)
    return out.decode(errors="replace")
