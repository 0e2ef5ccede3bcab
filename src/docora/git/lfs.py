"""Downloading Git LFS objects through the batch API, in-process (SPEC 13).

Why not the `git-lfs` CLI: it speaks HTTP through its own Go stack, which honours none of
the curl settings that pin git to the address Docora checked (SPEC 6); a name that
resolves to a public address at the check and to an internal one at the connection would
pass. Here the LFS endpoint and every `href` it hands out go through the pinned transport
(docora/transport.py) like ref reads and webhooks: resolved, every address checked, the
socket opened to a checked one. It also saves a process per batch.

The protocol (git-lfs docs/api/batch.md, basic-transfers.md): `POST {endpoint}/objects/batch`
with `operation: download`, `transfers: ["basic"]` and up to 100 objects; each answer
object has a `download` action (`href`, `header`, `expires_at`/`expires_in`) or an
`error`. The endpoint is `lfs.url` from a committed `.lfsconfig`, else the remote URL with
`.git` added as git-lfs adds it, plus `/info/lfs`.

Credentials: the repository's token goes as git would send it (Basic), and only to the
remote's own origin: a committed `.lfsconfig` may name any host, and the token is not
theirs to receive. An action's own `header` is sent as the server gave it. Redirects of
a download are followed on the same origin only; one to another host fails the sync.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterable
from urllib.parse import urljoin, urlsplit

import httpx
import msgspec

from docora import __version__, metrics
from docora.git.command import (
    CLASS_MESSAGES,
    GitError,
    GitErrorKind,
    authorization,
    git_environment,
    run_git_async,
)
from docora.git.lfs_cache import IntegrityError, ObjectCache, Receiver
from docora.net import RefusedAddress, Resolver, system_resolver
from docora.transport import PinnedTransport

MEDIA_TYPE = "application/vnd.git-lfs+json"
BATCH_SIZE = 100  # the most objects git-lfs asks for in one batch
MAX_BATCH_ANSWER = 4 * 1024 * 1024
MAX_REDIRECTS = 3
DOWNLOAD_CONCURRENCY = 4
LFSCONFIG = ".lfsconfig"
AGENT = f"git-lfs/docora-{__version__}"


class Wanted(msgspec.Struct, frozen=True):
    """An object a pointer names, and the path it was found at (for messages)."""

    oid: str
    size: int
    path: str


class Fetched(msgspec.Struct, frozen=True):
    oid: str
    is_binary: bool
    downloaded_bytes: int  # 0 when another task on this host had already downloaded it


class _Action(msgspec.Struct):
    href: str
    header: dict[str, str] = {}
    expires_at: str | None = None
    expires_in: int | None = None


class _Actions(msgspec.Struct):
    download: _Action | None = None


class _ObjectError(msgspec.Struct):
    code: int = 0
    message: str = ""


class _BatchObject(msgspec.Struct):
    oid: str
    size: int = 0
    actions: _Actions | None = None
    error: _ObjectError | None = None


class _BatchAnswer(msgspec.Struct):
    objects: list[_BatchObject] = []
    transfer: str = "basic"


_decode_answer = msgspec.json.Decoder(_BatchAnswer).decode


class Unavailable(GitError):
    """The LFS server does not have an object (404, or an `error` in the batch answer):
    skipped under `LFS_MISSING=skip`, a failed sync otherwise."""

    def __init__(self, wanted: Wanted, why: str) -> None:
        super().__init__(GitErrorKind.LFS, f"LFS object of {wanted.path} is unavailable ({why})")
        self.wanted = wanted


def endpoint_for(remote_url: str, lfs_url: str | None) -> str:
    """git-lfs's endpoint for a remote: `lfs.url` when set, else `{remote}.git/info/lfs`."""
    if lfs_url:
        return lfs_url.rstrip("/")
    base = remote_url.rstrip("/")
    if not base.endswith(".git"):
        base += ".git"
    return base + "/info/lfs"


async def committed_lfs_url(mirror, commit: str) -> str | None:
    """`lfs.url` from the commit's `.lfsconfig` (read from the blob, never a work tree)."""
    try:
        out = await run_git_async(
            ["config", "--blob", f"{commit}:{LFSCONFIG}", "--get", "lfs.url"],
            env=git_environment(),
            timeout_ms=30_000,
            cwd=str(mirror),
        )
    except GitError:
        return None  # no such file, or no such key
    return out.strip() or None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class LfsClient:
    """One per worker process: its transport keeps connections to LFS hosts alive."""

    def __init__(
        self,
        *,
        allow_private: bool,
        allow_http: bool | None = None,
        resolver: Resolver = system_resolver,
        timeout_ms: int = 120_000,
        transport: PinnedTransport | None = None,
    ) -> None:
        self._allow_http = allow_private if allow_http is None else allow_http
        self._timeout = timeout_ms / 1000
        self._transport = transport or PinnedTransport(
            resolver=resolver,
            allow_private=allow_private,
            max_connections=32,
            keepalive_expiry=30.0,
            max_body=MAX_BATCH_ANSWER,
            what="lfs url",
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def fetch(
        self,
        cache: ObjectCache,
        wanted: Iterable[Wanted],
        *,
        remote_url: str,
        endpoint: str,
        token: str | None,
    ) -> dict[str, Fetched | Unavailable]:
        """Make every wanted object present in the cache; by oid, what became of each.
        Raises GitError (an Unavailable is returned, not raised) for anything else: the
        server refused, a download failed its check, an address was refused."""
        unique = list({w.oid: w for w in wanted}.values())
        results: dict[str, Fetched | Unavailable] = {}
        missing = []
        for w in unique:
            if cache.has(w.oid):
                results[w.oid] = Fetched(w.oid, await asyncio.to_thread(cache.is_binary, w.oid), 0)
            else:
                missing.append(w)
        session = _Session(self, cache, remote_url, endpoint, token)
        for start in range(0, len(missing), BATCH_SIZE):
            results.update(await session.batch(missing[start : start + BATCH_SIZE]))
        return results

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, sink=None
    ) -> httpx.Response:
        scheme = urlsplit(url).scheme.lower()
        if scheme != "https" and not (scheme == "http" and self._allow_http):
            raise GitError(
                GitErrorKind.REFUSED, f"LFS URL refused: {scheme or 'no'} scheme (https only)"
            )
        seconds = self._timeout
        extensions: dict = {
            "timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
        }
        if sink is not None:
            extensions["body_sink"] = sink
        try:
            request = httpx.Request(
                method, url, headers=headers, content=body, extensions=extensions
            )
        except (httpx.InvalidURL, ValueError):
            raise GitError(GitErrorKind.REFUSED, "LFS URL refused: not a URL") from None
        try:
            return await self._transport.handle_async_request(request)
        except RefusedAddress as exc:
            message = CLASS_MESSAGES[GitErrorKind.REFUSED].replace("git host", "LFS host")
            raise GitError(GitErrorKind.REFUSED, message, detail=str(exc)) from None
        except httpx.TimeoutException:
            raise GitError(GitErrorKind.TIMEOUT, "the LFS host did not answer in time") from None
        except httpx.HTTPError as exc:
            detail = f"{urlsplit(url).hostname}: {type(exc).__name__}"
            raise GitError(
                GitErrorKind.NETWORK, "could not connect to the LFS host", detail=detail
            ) from None


class _Session:
    """One fetch: the endpoint, the credentials, and where each object goes."""

    def __init__(
        self,
        client: LfsClient,
        cache: ObjectCache,
        remote_url: str,
        endpoint: str,
        token: str | None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.endpoint = endpoint
        self.remote_origin = _origin(remote_url)
        self.auth = authorization(remote_url, token) if token else None

    def _credentials(self, url: str) -> dict[str, str]:
        if self.auth and _origin(url) == self.remote_origin:
            return {"Authorization": self.auth}
        return {}

    async def batch(self, wanted: list[Wanted]) -> dict[str, Fetched | Unavailable]:
        by_oid = {w.oid: w for w in wanted}
        body = msgspec.json.encode(
            {
                "operation": "download",
                "transfers": ["basic"],
                "objects": [{"oid": w.oid, "size": w.size} for w in wanted],
                "hash_algo": "sha256",
            }
        )
        headers = {
            "Accept": MEDIA_TYPE,
            "Content-Type": MEDIA_TYPE,
            "User-Agent": AGENT,
            **self._credentials(self.endpoint),
        }
        url = self.endpoint + "/objects/batch"
        answer = await self.client.request("POST", url, headers, body)
        first = wanted[0].path
        _check_status(answer.status_code, f"the LFS batch API (for {first})")
        if answer.extensions.get("truncated"):
            raise GitError(GitErrorKind.LFS, "the LFS batch answer is too large")
        try:
            decoded = _decode_answer(await answer.aread())
        except msgspec.DecodeError:
            raise GitError(GitErrorKind.LFS, "the LFS batch answer is not valid JSON") from None
        if decoded.transfer != "basic":
            raise GitError(GitErrorKind.LFS, f"the LFS server chose transfer {decoded.transfer!r}")
        answered_at = time.time()
        answered = {o.oid: o for o in decoded.objects if o.oid in by_oid}
        limit = asyncio.Semaphore(DOWNLOAD_CONCURRENCY)

        async def one(w: Wanted) -> Fetched | Unavailable:
            item = answered.get(w.oid)
            if item is None:
                return Unavailable(w, "not in the batch answer")
            if item.error is not None:
                return Unavailable(w, f"the server answered {item.error.code}")
            if item.actions is None or item.actions.download is None:
                return Unavailable(w, "no download action")
            async with limit:
                return await self._download(w, item.actions.download, answered_at)

        return dict(zip(by_oid, await asyncio.gather(*map(one, wanted)), strict=True))

    async def _download(
        self, wanted: Wanted, action: _Action, answered_at: float
    ) -> Fetched | Unavailable:
        async with self.cache.claimed(wanted.oid):
            if self.cache.has(wanted.oid):  # another task or process got it meanwhile
                return Fetched(wanted.oid, self.cache.is_binary(wanted.oid), 0)
            _check_expiry(action, wanted, answered_at)
            receiver = self.cache.receiver(wanted.oid, wanted.size)
            try:
                answer = await self._follow(wanted, action, receiver)
                if answer in (404, 410):
                    return Unavailable(wanted, f"the server answered {answer}")
                try:
                    is_binary = await asyncio.to_thread(receiver.commit)
                except IntegrityError as exc:
                    raise _integrity(wanted, exc) from None
            finally:
                receiver.discard()
        metrics.LFS_OBJECTS_DOWNLOADED.inc()
        metrics.LFS_BYTES_DOWNLOADED.inc(wanted.size)
        return Fetched(wanted.oid, is_binary, wanted.size)

    async def _follow(self, wanted: Wanted, action: _Action, receiver: Receiver) -> int:
        """GET the href (and same-origin redirects) into the receiver; the final status."""
        url = action.href
        start = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            headers = {"User-Agent": AGENT, **self._credentials(url), **action.header}
            try:
                answer = await self.client.request("GET", url, headers, None, sink=receiver)
            except IntegrityError as exc:  # raised by the receiver, mid-body
                raise _integrity(wanted, exc) from None
            code = answer.status_code
            if code in (301, 302, 303, 307, 308) and "location" in answer.headers:
                receiver.restart()
                url = urljoin(url, answer.headers["location"])
                if _origin(url) != start:
                    raise GitError(
                        GitErrorKind.REFUSED,
                        f"LFS download of {wanted.path} redirected to another host",
                    )
                continue
            if code in (404, 410):
                return code
            _check_status(code, f"the LFS download of {wanted.path}")
            return code
        raise GitError(GitErrorKind.LFS, f"LFS download of {wanted.path}: too many redirects")


def _integrity(wanted: Wanted, exc: IntegrityError) -> GitError:
    return GitError(GitErrorKind.LFS, f"LFS object of {wanted.path} failed its check: {exc}")


def _check_status(code: int, what: str) -> None:
    if 200 <= code < 300:
        return
    if code in (401, 403):
        raise GitError(GitErrorKind.AUTH, f"{what} refused the credentials ({code})")
    if code == 404:
        raise GitError(GitErrorKind.NOT_FOUND, f"{what} answered 404 (no LFS server there?)")
    raise GitError(GitErrorKind.LFS, f"{what} answered {code}")


def _check_expiry(action: _Action, wanted: Wanted, answered_at: float) -> None:
    """An action past its `expires_in` (seconds from the answer) or its `expires_at`."""
    now = time.time()
    expired = action.expires_in is not None and answered_at + action.expires_in <= now
    if action.expires_at:
        try:
            at = dt.datetime.fromisoformat(action.expires_at.replace("Z", "+00:00"))
        except ValueError:
            at = None
        if at is not None and at.timestamp() <= now:
            expired = True
    if expired:
        raise GitError(
            GitErrorKind.LFS, f"LFS download of {wanted.path}: the server's action had expired"
        )
