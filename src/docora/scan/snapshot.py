"""Bringing a repository's snapshot to a new commit, doing only the work that changed.

Incremental when the previous snapshot's commit is in the mirror and `.docoraignore` did
not change: only the paths `git diff-tree` reports are examined. Otherwise the whole tree
is listed, and still only blobs never seen before are read and hashed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from psycopg import AsyncConnection

from docora.git.mirror import has_commit
from docora.git.spool import SpoolWriter
from docora.git.stream import cat_file_into, delta_bases
from docora.scan import order
from docora.scan.hashing import BatchFactsParser
from docora.scan.lfs_content import LfsSource, LfsStats, resolve_pointers, rules_changed
from docora.scan.tree import changed_rows, full_rows, ignore_file_changed
from docora.store import scans
from docora.store.scans import BlobFacts

FACTS_PAGE = 20000
# A first snapshot is published in parts (store/scans.py) so that deliveries start while
# the rest is hashed: the first part is small, to start them soon, and each next part twice
# as large, up to FACTS_PAGE: chain order (scan/order.py) within small parts rebuilds more
# delta bases, and later parts only need to stay ahead of the deliveries.
FIRST_PART = 1000
# git's inflation dominates hashing; two cat-file processes keep both cores busy. A page
# of fewer blobs than SPLIT_FROM_BLOBS is read by one, in path order (a process costs more
# than ordering or splitting would save), and so is a mirror whose packs are large: each
# reader maps the packs it reads (its memory grows with them), and one reader in chain
# order is fast already (scan/order.py).
HASH_STREAMS = 2
SPLIT_FROM_BLOBS = 64
ONE_STREAM_FROM_PACK_BYTES = 32 * 1024 * 1024


class ScanStats(msgspec.Struct, frozen=True):
    full: bool
    paths_examined: int
    blobs_hashed: int
    bytes_hashed: int = 0
    # Wall time of each step, for the log line operators and bench/throughput.py read.
    list_ms: float = 0.0
    hash_ms: float = 0.0
    apply_ms: float = 0.0
    lfs: LfsStats = LfsStats()
    parts: int = 0  # parts published before the end (a first snapshot's, progressively)


async def scan_commit(
    conn: AsyncConnection,
    mirror: Path,
    repository_id: str,
    *,
    previous: str | None,
    commit: str,
    max_size: int,
    lfs: LfsSource | None = None,
    rescan_all: bool = False,
    first_part_published: Callable[[], Awaitable[None]] | None = None,
) -> ScanStats:
    """`lfs`: resolve Git LFS pointers through it (None: LFS=off, pointers are files).
    `rescan_all`: look at every path (the previous snapshot was made with LFS the other
    way). `first_part_published`: publish a first snapshot (no previous one) in parts, and
    call this once the first part is final."""
    full = (
        rescan_all
        or previous is None
        or not await has_commit(mirror, previous)
        or await ignore_file_changed(mirror, previous, commit)
        or (lfs is not None and await rules_changed(mirror, previous, commit))
    )
    if full:
        rows = full_rows(mirror, commit, max_size=max_size)
    else:
        assert previous is not None
        rows = changed_rows(mirror, previous, commit, max_size=max_size)
    marks = [time.perf_counter()]
    lfs_stats = LfsStats()
    await scans.start_work(conn)
    try:
        await scans.copy_work(conn, rows)
        marks.append(time.perf_counter())
        if lfs is not None:
            # First: a part's pointers must be resolved before it is published, and the
            # paths this skips are not hashed at all.
            lfs_stats = await resolve_pointers(conn, mirror, commit, lfs, max_size=max_size)
        spool = SpoolWriter(mirror, commit)
        parts = None
        if previous is None and first_part_published is not None:
            parts = Parts(conn, repository_id, commit, spool, first_part_published)
            await scans.start_parts(conn, repository_id, commit)
        try:
            hashed, size = await _hash_new_blobs(conn, mirror, repository_id, spool, parts)
            spool.finish()
        except BaseException:
            spool.discard()
            raise
        marks.append(time.perf_counter())
        examined = await scans.apply_work(
            conn,
            repository_id,
            commit,
            full=full,
            hashed=hashed,
            lfs_resolved=lfs is not None,
            published=parts.through if parts else "",
        )
        marks.append(time.perf_counter())
    finally:
        await scans.end_work(conn)
    list_ms, hash_ms, apply_ms = ((b - a) * 1000 for a, b in itertools.pairwise(marks))
    return ScanStats(
        full=full,
        paths_examined=examined,
        blobs_hashed=hashed,
        bytes_hashed=size,
        list_ms=list_ms,
        hash_ms=hash_ms,
        apply_ms=apply_ms,
        lfs=lfs_stats,
        parts=parts.count if parts else 0,
    )


class Parts:
    """A first snapshot being published part by part, in path order."""

    def __init__(
        self,
        conn: AsyncConnection,
        repository_id: str,
        commit: str,
        spool: SpoolWriter,
        first_published: Callable[[], Awaitable[None]],
    ) -> None:
        self._conn = conn
        self._repository_id = repository_id
        self._commit = commit
        self._spool = spool
        self._first_published = first_published
        self.through = ""  # the rows of paths up to this one are final
        self.count = 0

    async def publish(self, through: str) -> None:
        """Every path up to `through` has its facts: make its rows final (and the blobs
        read so far readable from the spool, for the deliveries this lets start)."""
        self._spool.publish()
        await scans.publish_part(
            self._conn, self._repository_id, self._commit, after=self.through, through=through
        )
        self.through = through
        self.count += 1
        if self.count == 1:
            await self._first_published()


async def _hash_new_blobs(
    conn: AsyncConnection,
    mirror: Path,
    repository_id: str,
    spool: SpoolWriter,
    parts: Parts | None = None,
) -> tuple[int, int]:
    """(blobs, bytes) read and hashed: only blobs this repository never saw before. With
    `parts`, each full page is published as a part once hashed."""
    hashed, size, after = 0, 0, ""
    readers = 1 if pack_bytes(mirror) >= ONE_STREAM_FROM_PACK_BYTES else HASH_STREAMS
    limit = FIRST_PART if parts else FACTS_PAGE
    while page := await scans.missing_facts(conn, repository_id, after=after, limit=limit):
        oids = list(dict.fromkeys(blob_id for _, blob_id in page))  # once each
        if len(oids) < SPLIT_FROM_BLOBS:  # a few changed files: one reader, no ordering
            streams = [oids]
        else:
            trees = order.chains(oids, await delta_bases(mirror, oids))
            streams = order.streams(trees, readers)
        facts = [
            f
            for stream in await asyncio.gather(*(read_facts(mirror, s, spool) for s in streams))
            for f in stream
        ]
        await scans.store_facts(conn, repository_id, facts)
        hashed += len(facts)
        size += sum(f.size for _, f in facts)
        after = page[-1][0]
        if parts is not None and len(page) == limit:
            await parts.publish(after)
            limit = min(limit * 2, FACTS_PAGE)
    return hashed, size


def pack_bytes(mirror: Path) -> int:
    """The size of the mirror's packs: what each reader may come to map."""
    return sum(p.stat().st_size for p in (mirror / "objects" / "pack").glob("*.pack"))


async def read_facts(
    mirror: Path, oids: list[str], spool: SpoolWriter | None = None
) -> list[tuple[str, BlobFacts]]:
    """Facts of the blobs, read by one `git cat-file` in the order given (chain order:
    its cache of delta bases and its window on the packs may then stay small)."""
    parser = BatchFactsParser(spool)
    facts: list[tuple[str, BlobFacts]] = []
    await cat_file_into(mirror, oids, lambda piece: facts.extend(parser.feed(piece)), bounded=True)
    parser.finish()
    return facts
