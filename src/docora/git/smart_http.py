"""Reading a remote's refs over smart HTTP in-process, as `git ls-remote` would.

A no-change check asks one question of the remote (where is the branch's tip?) and
starting `git ls-remote` for it costs ~6 ms of CPU: more than everything else the check
does. Over http(s) the same answer takes two requests on a kept-alive connection:
`GET info/refs?service=git-upload-pack` with `Git-Protocol: version=2`, then `POST
git-upload-pack` with `command=ls-refs` (symrefs, ref prefixes HEAD and the branch); a
server that answers in protocol v0 sends every ref in the first answer instead.

Protocol v2 is stateless: the first request only tells which commands the server has.
Once an origin (scheme, host, port) has advertised v2 with `ls-refs`, later reads there
send the `ls-refs` POST alone: one request a check instead of two, for us and for the
host. Any answer to it other than a parsable 200 (a missing repository, a refused
token, a server that changed) is read again the full way, so failures are classified
from the same answers as before.

Security is that of git (SPEC 6): connections go through the pinned transport (resolved,
every address checked, the socket opened to a checked one), a redirect is an error as
with `http.followRedirects=false`, and the token travels as git sends it (Basic, to the
repository's origin only). Failures get the class git's own words would get (git/command's
classifier over the same messages). An answer this reader does not understand (a dumb
HTTP server, an unknown protocol, an advertisement too large to keep) raises
ProtocolError, and the caller asks the git CLI instead.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from docora import __version__
from docora.git.command import CLASS_MESSAGES, GitError, GitErrorKind, authorization, failure
from docora.git.refs import (
    ProtocolError,
    RefListing,
    ls_refs_request,
    parse_advertisement,
    parse_ls_refs,
)
from docora.net import RefusedAddress, Resolver, system_resolver
from docora.transport import PinnedTransport

AGENT = f"git/docora-{__version__}"
ADVERTISEMENT = "application/x-git-upload-pack-advertisement"
RESULT = "application/x-git-upload-pack-result"
# A v0 advertisement lists every ref; past this it is left to git, which streams it.
MAX_ANSWER = 4 * 1024 * 1024
# Origins remembered as speaking v2 (a handful of git hosts in practice; bounded anyway).
MAX_V2_ORIGINS = 1024


def ls_remote_patterns(branch: str | None) -> list[str]:
    """What `git ls-remote` is asked for (git/remote.py); the same filter applies here."""
    return ["HEAD", f"refs/heads/{branch}"] if branch else ["HEAD"]


def matches(ref: str, patterns: list[str]) -> bool:
    """ls-remote's pattern rule: a pattern matches a ref equal to it or ending in /pattern."""
    return any(ref == p or ref.endswith("/" + p) for p in patterns)


class SmartHttpRefs:
    """One per process: its transport keeps connections alive between checks."""

    def __init__(
        self, *, allow_local: bool, resolver: Resolver = system_resolver, max_connections=64
    ) -> None:
        self._allow_local = allow_local
        self._transport = PinnedTransport(
            resolver=resolver,
            allow_private=allow_local,
            max_connections=max_connections,
            keepalive_expiry=30.0,
            max_body=MAX_ANSWER,
            what="github_url",
        )
        self._v2_origins: set[str] = set()

    @staticmethod
    def speaks(url: str) -> bool:
        return urlsplit(url).scheme.lower() in ("http", "https")

    async def list_refs(
        self, url: str, *, branch: str | None, token: str | None, timeout_ms: int
    ) -> RefListing:
        """The refs `git ls-remote --symref <url> HEAD [refs/heads/<branch>]` would print."""
        if urlsplit(url).scheme.lower() == "http" and not self._allow_local:
            raise GitError(GitErrorKind.GIT, "git ls-remote failed", detail="http not allowed")
        base = url.rstrip("/")
        try:
            httpx.URL(base)
        except (httpx.InvalidURL, ValueError):
            # Spellings httpx will not parse (e.g. octal IPv4) are git's to judge.
            raise ProtocolError("a URL this reader does not parse") from None
        headers = {"User-Agent": AGENT, "Git-Protocol": "version=2", "Pragma": "no-cache"}
        if token:
            headers["Authorization"] = authorization(url, token)
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                listing = await self._exchange(base, branch, headers, timeout_ms)
        except TimeoutError:
            message = f"git ls-remote timed out after {timeout_ms} ms"
            raise GitError(GitErrorKind.TIMEOUT, message) from None
        except RefusedAddress as exc:
            message = CLASS_MESSAGES[GitErrorKind.REFUSED]
            raise GitError(GitErrorKind.REFUSED, message, detail=str(exc)) from None
        except httpx.TimeoutException:
            message = f"git ls-remote timed out after {timeout_ms} ms"
            raise GitError(GitErrorKind.TIMEOUT, message) from None
        except httpx.HTTPError as exc:
            detail = f"Failed to connect to {urlsplit(url).hostname}: {type(exc).__name__}"
            raise GitError(
                GitErrorKind.NETWORK, CLASS_MESSAGES[GitErrorKind.NETWORK], detail=detail
            ) from None
        patterns = ls_remote_patterns(branch)
        tips = {ref: oid for ref, oid in listing.tips.items() if matches(ref, patterns)}
        head = listing.head_target if "HEAD" in tips else None
        return RefListing(head_target=head, tips=tips)

    async def _exchange(
        self, base: str, branch: str | None, headers: dict[str, str], timeout_ms: int
    ) -> RefListing:
        origin = _origin(base)
        if origin in self._v2_origins:
            listing = await self._ls_refs_alone(base, branch, headers, timeout_ms)
            if listing is not None:
                return listing
        answer = await self._request(
            "GET", f"{base}/info/refs?service=git-upload-pack", headers, None, timeout_ms
        )
        _expect(answer, ADVERTISEMENT)
        advertisement = parse_advertisement(await answer.aread())
        if advertisement.version == 0:
            assert advertisement.listing is not None
            self._v2_origins.discard(origin)
            return advertisement.listing
        if not any(c == "ls-refs" or c.startswith("ls-refs=") for c in advertisement.capabilities):
            raise ProtocolError("the server speaks protocol v2 without ls-refs")
        listing = await self._ls_refs(base, branch, headers, timeout_ms)
        if len(self._v2_origins) >= MAX_V2_ORIGINS:
            self._v2_origins.clear()
        self._v2_origins.add(origin)
        return listing

    async def _ls_refs_alone(
        self, base: str, branch: str | None, headers: dict[str, str], timeout_ms: int
    ) -> RefListing | None:
        """The ls-refs POST without the advertisement before it; None when the answer is
        anything but a parsable listing (the caller then asks the full way). An empty
        listing is asked again too: it is what an empty repository answers, but also what
        a server no longer speaking v2 might send, and only the advertisement tells."""
        try:
            listing = await self._ls_refs(base, branch, headers, timeout_ms)
        except (GitError, ProtocolError):
            return None
        return listing if listing.tips else None

    async def _ls_refs(
        self, base: str, branch: str | None, headers: dict[str, str], timeout_ms: int
    ) -> RefListing:
        post_headers = {
            **headers,
            "Content-Type": "application/x-git-upload-pack-request",
            "Accept": RESULT,
        }
        body = ls_refs_request(branch, AGENT)
        answer = await self._request(
            "POST", f"{base}/git-upload-pack", post_headers, body, timeout_ms
        )
        _expect(answer, RESULT)
        return parse_ls_refs(await answer.aread())

    async def _request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout_ms: int
    ) -> httpx.Response:
        seconds = timeout_ms / 1000
        request = httpx.Request(
            method,
            url,
            headers=headers,
            content=body,
            extensions={
                "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
            },
        )
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


def _origin(base: str) -> str:
    parts = urlsplit(base)
    return f"{parts.scheme.lower()}://{parts.netloc.rpartition('@')[2].lower()}"


def _expect(answer: httpx.Response, content_type: str) -> None:
    """An error status is classified as git classifies its own message for it."""
    code = answer.status_code
    if code == 404:
        raise failure("repository not found", "ls-remote")
    if code == 401:
        raise failure("Authentication failed", "ls-remote")
    if code != 200:
        raise failure(f"The requested URL returned error: {code}", "ls-remote")
    if answer.extensions.get("truncated"):
        raise ProtocolError("the answer is larger than this reader keeps")
    if answer.headers.get("content-type", "").split(";")[0].strip() != content_type:
        raise ProtocolError("not a smart-HTTP answer (a dumb server?)")
