"""A scan's Git LFS step (SPEC 13): pointers among the listed files become their objects.

Runs after the listing and hashing, on the work table: only files small enough to be
pointers are looked at, only those `.gitattributes` at the tip gives `filter=lfs` are read,
only those that parse as pointers count. Their objects are made present in the mirror's
cache (git/lfs.py downloads what is not there yet) and their rows get the object's facts:
`sha` is the oid, `size` the object's, binary-ness sniffed from its bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
from psycopg import AsyncConnection

from docora.git.command import git_environment, run_git_async
from docora.git.lfs import Fetched, LfsClient, Unavailable, Wanted, committed_lfs_url, endpoint_for
from docora.git.lfs_cache import ObjectCache
from docora.git.stream import BlobReader, records
from docora.scan.lfs import ATTRIBUTES_FILE, POINTER_MAX_BYTES, lfs_matcher, parse_pointer
from docora.store import scans
from docora.store.scans import LfsContent

log = logging.getLogger(__name__)

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
ATTRIBUTES_PATHSPEC = f":(glob)**/{ATTRIBUTES_FILE}"
UNAVAILABLE = "lfs object unavailable"
# Files whose change can turn paths into LFS ones or send them elsewhere: a scan across
# such a change looks at every path again.
RULE_PATHSPECS = (ATTRIBUTES_PATHSPEC, ".lfsconfig")


class LfsSource(msgspec.Struct, frozen=True):
    """Where a repository's LFS objects come from, and what a missing one does."""

    client: LfsClient
    remote_url: str
    token: str | None
    skip_missing: bool


class LfsStats(msgspec.Struct, frozen=True):
    pointers: int = 0
    downloaded: int = 0
    downloaded_bytes: int = 0


async def attribute_files(mirror: Path, commit: str) -> dict[str, str]:
    """The commit's `.gitattributes` files by directory ("" for the root). Symlinks are
    left out, as git reads none from a tree."""
    found: list[tuple[str, str]] = []
    pending: bytes | None = None
    args = ["diff-tree", "-r", "-z", "--raw", EMPTY_TREE, commit, "--", ATTRIBUTES_PATHSPEC]
    async for record in records(args, mirror):
        if pending is None:
            pending = record
            continue
        _, mode, _, oid, _ = pending.decode().lstrip(":").split(" ")
        pending = None
        path = record.decode("utf-8", errors="replace")
        if mode in ("100644", "100755"):
            found.append((path.rpartition("/")[0] if "/" in path else "", oid))
    texts: dict[str, str] = {}
    if found:
        async with BlobReader(mirror) as reader:
            for directory, oid in found:
                texts[directory] = (await reader.read(oid)).decode("utf-8", errors="replace")
    return texts


async def rules_changed(mirror: Path, old: str, new: str) -> bool:
    out = await run_git_async(
        ["diff-tree", "--name-only", "-z", old, new, "--", *RULE_PATHSPECS],
        env=git_environment(),
        timeout_ms=30_000,
        cwd=str(mirror),
    )
    return bool(out.strip("\0\n"))


async def resolve_pointers(
    conn: AsyncConnection, mirror: Path, commit: str, source: LfsSource, *, max_size: int
) -> LfsStats:
    """Give every LFS pointer in the work table its object's facts, or skip it."""
    small = await scans.small_files(conn, POINTER_MAX_BYTES)
    if not small:
        return LfsStats()
    is_lfs = lfs_matcher(await attribute_files(mirror, commit))
    covered = [(path, blob_id) for path, blob_id in small if is_lfs(path)]
    if not covered:
        return LfsStats()
    wanted: list[Wanted] = []
    skipped: list[tuple[str, str]] = []
    async with BlobReader(mirror) as reader:
        blobs = reader.read_many([blob_id for _, blob_id in covered])
        for path, _ in covered:
            pointer = parse_pointer(await anext(blobs))
            if pointer is None:
                continue  # covered by the attributes but not a pointer: an ordinary file
            if pointer.size > max_size:
                log.warning(
                    "skipping %s: its LFS object of %d bytes is over MAX_FILE_SIZE_BYTES",
                    path,
                    pointer.size,
                )
                skipped.append((path, f"larger than {max_size} bytes"))
            else:
                wanted.append(Wanted(pointer.oid, pointer.size, path))
    fetched = await _fetch(mirror, commit, source, wanted)
    contents: list[LfsContent] = []
    downloaded = downloaded_bytes = 0
    for want in wanted:
        outcome = fetched[want.oid]
        if isinstance(outcome, Unavailable):
            if not source.skip_missing:
                raise outcome  # names one path the object is at
            log.warning("skipping %s: %s", want.path, outcome.message)
            skipped.append((want.path, UNAVAILABLE))
            continue
        contents.append(LfsContent(want.path, want.oid, want.size, outcome.is_binary))
    for outcome in fetched.values():
        if not isinstance(outcome, Unavailable) and outcome.downloaded_bytes:
            downloaded += 1
            downloaded_bytes += outcome.downloaded_bytes
    await scans.set_lfs(conn, contents)
    await scans.skip_paths(conn, skipped)
    return LfsStats(len(wanted), downloaded, downloaded_bytes)


async def ensure_objects(mirror: Path, commit: str, source: LfsSource, wanted: list[Wanted]) -> int:
    """Make objects present in the cache (a delivery on a host whose scan did not download
    them); raises for any that cannot be. Returns the bytes downloaded."""
    fetched = await _fetch(mirror, commit, source, wanted)
    for outcome in fetched.values():
        if isinstance(outcome, Unavailable):
            raise outcome
    return sum(o.downloaded_bytes for o in fetched.values() if isinstance(o, Fetched))


async def _fetch(
    mirror: Path, commit: str, source: LfsSource, wanted: list[Wanted]
) -> dict[str, Fetched | Unavailable]:
    if not wanted:
        return {}
    endpoint = endpoint_for(source.remote_url, await committed_lfs_url(mirror, commit))
    return await source.client.fetch(
        ObjectCache(mirror),
        wanted,
        remote_url=source.remote_url,
        endpoint=endpoint,
        token=source.token,
    )
