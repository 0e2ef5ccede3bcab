"""Delivering one watch's pending changes, in order, recording each acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
from psycopg_pool import AsyncConnectionPool

from docora import metrics
from docora.deliver.batches import Batch, BatchPacker
from docora.deliver.client import SendResult, WebhookSender
from docora.deliver.content import base64_text, chunk_count, raw_bytes_per_chunk
from docora.deliver.events import (
    WatchKey,
    batch_delivery_id,
    batch_event,
    chunk_group_id,
    delete_body,
    delivery_id,
    file_body,
    file_struct,
    whole_file,
)
from docora.deliver.payloads import ChunkInfo, FileBody, RepositoryRef, iso_timestamp
from docora.deliver.progress import PublishedSnapshot
from docora.deliver.recorder import AckRecorder
from docora.deliver.signing import signed_headers
from docora.errors import ExpectedFailure
from docora.git.lfs_cache import ObjectCache
from docora.git.spool import SpoolReader
from docora.git.spool import remove as remove_spool
from docora.git.stream import BlobReader
from docora.store import changes, watches
from docora.store.changes import GROUP_ORDER, Change, LogEntry

log = logging.getLogger(__name__)

PAGE_SIZE = 500
# Acknowledged events that may wait to be recorded (batched into one commit). With the
# requests in flight, this bounds what a worker crash can cause to be sent again.
UNRECORDED_MAX = 32
BATCHES_IN_FLIGHT = 2


class DeliveryFailed(ExpectedFailure):
    """An event was not acknowledged; the message is safe to show the app."""


@dataclass(frozen=True)
class BatchPolicy:
    max_events: int
    max_bytes: int


@dataclass(frozen=True)
class Target:
    app_id: str
    base_url: str
    key: str
    concurrency: int = 1
    batches: BatchPolicy | None = None  # set: the app takes batch requests (SPEC 11)


@dataclass(frozen=True)
class ChunkPolicy:
    threshold_bytes: int
    chunk_chars: int


@dataclass(frozen=True)
class Prepared:
    """One request to make: a single event's body, a chunked binary (body None: read and
    sent piece by piece by the sender), or a batch of events."""

    change: Change | None
    body: bytes | None
    batch: Batch | None = None


@dataclass
class WatchDelivery:
    pool: AsyncConnectionPool
    sender: WebhookSender
    target: Target
    watch: WatchKey
    repository: RepositoryRef
    commit_sha: str
    mirror: Path
    chunks: ChunkPolicy
    attempt: int
    # The watch's path filter as Postgres evaluates it (scan/filters.py); None: every file.
    path_regexes: list[str] | None = None
    path_includes: list[bool] | None = None
    # Makes a page's Git LFS objects present in the mirror's cache (downloading what
    # this host lacks); None: LFS=off, and an object not cached fails the delivery.
    ensure_lfs: Callable[[list[Change]], Awaitable[None]] | None = None
    # The blobs this host's scan of the commit kept (git/spool.py); None: all from git.
    spool: SpoolReader | None = None
    # Set: the snapshot is a first one still being published, and the watch holds nothing
    # (deliver/progress.py): its creates are sent as its parts become final.
    published: PublishedSnapshot | None = None

    async def run(self) -> int:
        """Send every pending change: all deletes, then creates, then updates, each in path
        order. Up to `concurrency` requests of one group are in flight; a group starts once
        the previous one is fully acknowledged. Raises DeliveryFailed at the first failure
        (what was acknowledged stays recorded, so a retry resumes)."""
        async with AckRecorder(
            self.pool, generation=self.watch.generation, max_pending=self._slots + UNRECORDED_MAX
        ) as self._recorder:
            for event in GROUP_ORDER:
                await self._run_group(event)
        return self._recorder.recorded

    async def _run_group(self, event: str) -> None:
        """One preparer reads blobs and builds bodies ahead, in path order, while up to
        `concurrency` senders post them: preparing the next event overlaps the wait for
        the current answer."""
        # Prepared requests waiting for a sender: a few single events, or one batch (up to
        # BATCH_MAX_BYTES each: memory stays bounded).
        ahead = 1 if self.target.batches else self._slots * 2
        ready: asyncio.Queue[Prepared | None] = asyncio.Queue(maxsize=ahead)
        failures: list[BaseException] = []

        async def sender() -> None:
            async with contextlib.AsyncExitStack() as stack:
                chunk_reader: BlobReader | None = None
                while (item := await ready.get()) is not None:
                    if failures:
                        continue
                    try:
                        if item.batch is not None:
                            assert item.body is not None
                            await self._send_batch(item.batch, item.body)
                            continue
                        assert item.change is not None
                        if item.body is not None:
                            await self._send(item.change, 0, item.body, final=True)
                            continue
                        if item.change.lfs:
                            await self._send_chunks(item.change, self._cached_pieces(item.change))
                            continue
                        if chunk_reader is None:
                            chunk_reader = await stack.enter_async_context(BlobReader(self.mirror))
                        await self._send_chunks(
                            item.change, self._blob_pieces(item.change, chunk_reader)
                        )
                    except Exception as exc:  # re-raised below, once every slot is idle
                        failures.append(exc)

        senders = [asyncio.create_task(sender()) for _ in range(self._slots)]
        try:
            try:
                async with BlobReader(self.mirror) as blobs:
                    async for item in self._requests(event, blobs):
                        if failures:
                            break
                        await ready.put(item)
            except Exception as exc:
                failures.append(exc)
            for _ in senders:
                await ready.put(None)
            await asyncio.gather(*senders)
        finally:
            # Cancelled (the worker's grace is over): the senders are tasks of their own
            # and would go on posting what is queued; stop them with this job.
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
        if failures:
            raise failures[0]

    @property
    def _slots(self) -> int:
        """Requests in flight at once: the app's delivery_concurrency, and at most
        BATCHES_IN_FLIGHT batches (megabytes each; more in flight measured no faster)."""
        if self.target.batches:
            return max(1, min(self.target.concurrency, BATCHES_IN_FLIGHT))
        return max(1, self.target.concurrency)

    def _is_chunked(self, change: Change) -> bool:
        return change.is_binary and change.size > self.chunks.threshold_bytes

    async def _requests(self, event: str, blobs: BlobReader) -> AsyncIterator[Prepared]:
        """The group's requests in order: one per event, or batches when the app takes
        them (a chunked binary, or an event too large for any batch, goes on its own in its
        place, closing the batch before it)."""
        policy = self.target.batches
        packer = (
            BatchPacker(
                self.repository,
                self.commit_sha,
                max_events=policy.max_events,
                max_bytes=policy.max_bytes,
            )
            if policy
            else None
        )
        async for page in self._pending(event):
            async for change, file in self._read_page(page, blobs):
                if packer is None or self._is_chunked(change):
                    if packer is not None and (closed := packer.take()):
                        yield self._batch_request(closed)
                    yield self._single_request(change, file)
                    continue
                encoded = batch_event(change, file)
                if not packer.fits_alone(encoded):
                    if closed := packer.take():
                        yield self._batch_request(closed)
                    yield self._single_request(change, file)
                elif closed := packer.add(change, encoded):
                    yield self._batch_request(closed)
        if packer is not None and (last := packer.take()):
            yield self._batch_request(last)

    def _single_request(self, change: Change, file: FileBody | None) -> Prepared:
        if change.event == "delete":
            return Prepared(
                change, delete_body(self.repository, change, self.commit_sha, iso_timestamp())
            )
        if file is None:
            return Prepared(change, None)  # chunked: streamed by the sender
        body = file_body(self.repository, change, self.commit_sha, iso_timestamp(), file)
        return Prepared(change, body)

    def _batch_request(self, batch: Batch) -> Prepared:
        body = batch.body(self.repository, self.commit_sha, iso_timestamp())
        batch.events = []  # in the body now; recording needs only the changes
        return Prepared(None, body, batch)

    async def _read_page(
        self, page: list[Change], blobs: BlobReader
    ) -> AsyncIterator[tuple[Change, FileBody | None]]:
        """Each change of a page with its file (None for deletes and chunked binaries). The
        page's blobs are asked of git all at once; LFS objects are read from the cache."""
        await self._ensure_lfs(page)
        whole = [c for c in page if c.event != "delete" and not self._is_chunked(c)]
        spooled = self._spooled([c for c in whole if not c.lfs])
        contents = blobs.read_many(
            [c.blob_id or "" for c in whole if not c.lfs and c.path not in spooled]
        )
        try:
            for change in page:
                if change.event == "delete" or self._is_chunked(change):
                    yield change, None
                elif change.lfs:
                    data = await asyncio.to_thread(self._lfs_cache.read, change.sha)
                    yield change, whole_file(change, data)
                elif change.path in spooled:
                    yield change, whole_file(change, self._from_spool(change, spooled))
                else:
                    yield change, whole_file(change, await anext(contents))
        finally:
            await contents.aclose()

    def _spooled(self, page: list[Change]) -> dict[str, tuple[int, int]]:
        """Path -> place in the spool, for the changes whose blob the spool holds."""
        if self.spool is None:
            return {}
        places = {c.path: self.spool.place(c.blob_id or "") for c in page}
        return {path: place for path, place in places.items() if place is not None}

    def _from_spool(self, change: Change, spooled: dict[str, tuple[int, int]]) -> bytes:
        """The blob as this host's scan kept it, checked against the snapshot: a spool that
        does not hold what the scan hashed is dropped, and the retry reads from git."""
        assert self.spool is not None
        data = self.spool.read(spooled[change.path])
        if data is None or hashlib.sha256(data).hexdigest() != change.sha:
            remove_spool(self.mirror, self.commit_sha)
            raise DeliveryFailed(f"{change.path}: the spooled copy is damaged; read again")
        return data

    @property
    def _lfs_cache(self) -> ObjectCache:
        return ObjectCache(self.mirror)

    async def _ensure_lfs(self, page: list[Change]) -> None:
        objects = [c for c in page if c.lfs and c.event != "delete"]
        if not objects:
            return
        if self.ensure_lfs is not None:
            await self.ensure_lfs(objects)
            return
        for change in objects:
            if not self._lfs_cache.has(change.sha):
                raise DeliveryFailed(f"LFS object of {change.path} is not cached here (LFS=off)")

    async def _pending(self, event: str) -> AsyncIterator[list[Change]]:
        """The group's changes, a page at a time, in path order; the next page is read
        while this one is sent, so the senders never wait for the database."""
        if self.published is not None and event == "create":
            async for page in self._published_pages(self.published):
                yield page
            return
        upcoming: asyncio.Task[list[Change]] | None = asyncio.create_task(self._page(event, ""))
        try:
            while upcoming is not None:
                page = await upcoming
                upcoming = None
                if len(page) == PAGE_SIZE:
                    upcoming = asyncio.create_task(self._page(event, page[-1].path))
                if page:
                    yield page
        finally:
            if upcoming is not None:
                upcoming.cancel()
                await asyncio.gather(upcoming, return_exceptions=True)

    async def _published_pages(self, published: PublishedSnapshot) -> AsyncIterator[list[Change]]:
        """The creates of a snapshot still being published, in path order: a page at a time
        up to what is final, then the next part once it is, until the snapshot is complete."""
        after = ""
        while True:
            page = await self._page("create", after, through=published.through)
            if page:
                yield page
                after = page[-1].path
            if len(page) == PAGE_SIZE:
                continue
            if published.complete:
                return
            await published.advance()
            self._take_in_spool()
            if published.complete:
                async with self.pool.connection() as conn:
                    # Counted against an empty snapshot when this delivery started.
                    await watches.refresh_pending(
                        conn, self.watch.repository_id, [self.watch.app_id]
                    )

    def _take_in_spool(self) -> None:
        """The scan spools what each part read: take in what it added since."""
        if self.spool is None:
            self.spool = SpoolReader.open(self.mirror, self.commit_sha)
        else:
            self.spool.refresh()

    async def _page(self, event: str, after: str, *, through: str | None = None) -> list[Change]:
        async with self.pool.connection() as conn:
            return await changes.change_page(
                conn,
                event=event,
                app_id=self.watch.app_id,
                repository_id=self.watch.repository_id,
                after=after,
                limit=PAGE_SIZE,
                regexes=self.path_regexes,
                includes=self.path_includes,
                through=through,
            )

    async def _blob_pieces(self, change: Change, blobs: BlobReader) -> AsyncIterator[bytes]:
        size = await blobs.open(change.blob_id or "")
        async for piece in blobs.chunks(size, raw_bytes_per_chunk(self.chunks.chunk_chars)):
            yield piece

    async def _cached_pieces(self, change: Change) -> AsyncIterator[bytes]:
        """An LFS object's bytes from the cache, a chunk's worth at a time."""
        with self._lfs_cache.path(change.sha).open("rb") as f:
            step = raw_bytes_per_chunk(self.chunks.chunk_chars)
            while piece := await asyncio.to_thread(f.read, step):
                yield piece

    async def _send_chunks(self, change: Change, pieces: AsyncIterator[bytes]) -> None:
        total = chunk_count(change.size, self.chunks.chunk_chars)
        group = chunk_group_id(self.watch, change)
        index = 0
        async for piece in pieces:
            file = file_struct(
                change,
                content=base64_text(piece),
                encoding="base64",
                chunk=ChunkInfo(id=group, index=index, total=total),
            )
            body = file_body(self.repository, change, self.commit_sha, iso_timestamp(), file)
            await self._send(change, index, body, final=index == total - 1)
            index += 1
        if index != total:
            raise DeliveryFailed(f"{change.path}: {index} chunks read, {total} expected")

    async def _post(self, event: str, request_id, body: bytes) -> SendResult:
        headers = signed_headers(
            app_id=self.target.app_id,
            key=self.target.key,
            event=event,
            delivery_id=str(request_id),
            timestamp=int(time.time()),
            body=body,
        )
        result = await self.sender.post(f"{self.target.base_url}/{event}", headers, body)
        metrics.WEBHOOK_DURATION.observe(result.latency_ms / 1000)
        return result

    async def _failed(self, what: str, entry: LogEntry, error: str | None) -> DeliveryFailed:
        """Log a failed attempt (one row) and say what failed."""
        log.warning(
            "%s not delivered: %s", what, error, extra={"delivery_id": str(entry.delivery_id)}
        )
        async with self.pool.connection() as conn:
            await changes.log_attempt(conn, entry)
        return DeliveryFailed(f"{what}: {error}")

    async def _send(self, change: Change, index: int, body: bytes, *, final: bool) -> None:
        request_id = delivery_id(self.watch, change, index)
        result = await self._post(change.event, request_id, body)
        metrics.EVENTS_SENT.labels(change.event, "delivered" if result.ok else "failed").inc()
        entry = self._log_entry(change, request_id, result)
        if not result.ok:
            raise await self._failed(f"{change.event} {change.path}", entry, result.error)
        await self._recorder.add(change if final else None, entry)

    async def _send_batch(self, batch: Batch, body: bytes) -> None:
        """One request for many events: a 2xx acknowledges all of them (recorded in one
        transaction, a log row each under the batch's id); anything else fails all."""
        request_id = batch_delivery_id(self.watch, batch.changes)
        result = await self._post("batch", request_id, body)
        first = batch.changes[0]
        if not result.ok:
            metrics.EVENTS_SENT.labels("batch", "failed").inc()
            what = f"batch of {len(batch.changes)} events from {first.event} {first.path}"
            entry = msgspec.structs.replace(
                self._log_entry(first, request_id, result), event="batch", path=None, sha=None
            )
            raise await self._failed(what, entry, result.error)
        for change in batch.changes:
            metrics.EVENTS_SENT.labels(change.event, "delivered").inc()
        await self._recorder.add_batch(
            [(c, self._log_entry(c, request_id, result)) for c in batch.changes]
        )

    def _log_entry(self, change: Change, request_id, result: SendResult) -> LogEntry:
        return LogEntry(
            app_id=self.watch.app_id,
            repository_id=self.watch.repository_id,
            delivery_id=request_id,
            event=change.event,
            path=change.path,
            sha=change.sha,
            commit_sha=self.commit_sha,
            status="delivered" if result.ok else "failed",
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            attempt=self.attempt,
            error=result.error,
        )
