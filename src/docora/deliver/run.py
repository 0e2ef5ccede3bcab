"""Delivering one watch's pending changes, in order, recording each acknowledgement."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from docora.deliver.client import SendResult, WebhookSender
from docora.deliver.content import base64_text, chunk_count, raw_bytes_per_chunk
from docora.deliver.events import (
    WatchKey,
    chunk_group_id,
    delete_body,
    delivery_id,
    file_body,
    whole_file_body,
)
from docora.deliver.payloads import ChunkInfo, RepositoryRef, iso_timestamp
from docora.deliver.signing import signed_headers
from docora.git.stream import BlobReader
from docora.store import changes
from docora.store.changes import GROUP_ORDER, Change, LogEntry

log = logging.getLogger(__name__)

PAGE_SIZE = 500


class DeliveryFailed(Exception):
    """An event was not acknowledged; the message is safe to show the app."""


class WatchGone(Exception):
    """The watch was deleted or reset while delivering: stop without error."""


@dataclass(frozen=True)
class Target:
    app_id: str
    base_url: str
    key: str


@dataclass(frozen=True)
class ChunkPolicy:
    threshold_bytes: int
    chunk_chars: int


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
    delivered: int = 0

    async def run(self) -> int:
        """Send every pending change: all deletes, then creates, then updates, each in path
        order. Raises DeliveryFailed at the first failure (acknowledged ones stay recorded)."""
        async with BlobReader(self.mirror) as blobs:
            for event in GROUP_ORDER:
                async for change in self._pending(event):
                    await self._deliver(change, blobs)
        return self.delivered

    async def _pending(self, event: str) -> AsyncIterator[Change]:
        after = ""
        while True:
            async with self.pool.connection() as conn:
                page = await changes.change_page(
                    conn,
                    event=event,
                    app_id=self.watch.app_id,
                    repository_id=self.watch.repository_id,
                    after=after,
                    limit=PAGE_SIZE,
                )
            for change in page:
                yield change
            if len(page) < PAGE_SIZE:
                return
            after = page[-1].path

    async def _deliver(self, change: Change, blobs: BlobReader) -> None:
        if change.event == "delete":
            body = delete_body(self.repository, change, self.commit_sha, iso_timestamp())
            await self._send(change, 0, body, final=True)
            return
        size = await blobs.open(change.blob_id or "")
        if change.is_binary and size > self.chunks.threshold_bytes:
            await self._send_chunks(change, blobs, size)
            return
        data = b"".join([piece async for piece in blobs.chunks(size)])
        body = whole_file_body(self.repository, change, self.commit_sha, iso_timestamp(), data)
        await self._send(change, 0, body, final=True)

    async def _send_chunks(self, change: Change, blobs: BlobReader, size: int) -> None:
        total = chunk_count(size, self.chunks.chunk_chars)
        group = chunk_group_id(self.watch, change)
        index = 0
        async for piece in blobs.chunks(size, raw_bytes_per_chunk(self.chunks.chunk_chars)):
            body = file_body(
                self.repository,
                change,
                self.commit_sha,
                iso_timestamp(),
                content=base64_text(piece),
                encoding="base64",
                chunk=ChunkInfo(id=group, index=index, total=total),
            )
            await self._send(change, index, body, final=index == total - 1)
            index += 1

    async def _send(self, change: Change, index: int, body: bytes, *, final: bool) -> None:
        request_id = delivery_id(self.watch, change, index)
        headers = signed_headers(
            app_id=self.target.app_id,
            key=self.target.key,
            event=change.event,
            delivery_id=str(request_id),
            timestamp=int(time.time()),
            body=body,
        )
        result = await self.sender.post(f"{self.target.base_url}/{change.event}", headers, body)
        entry = self._log_entry(change, request_id, result)
        async with self.pool.connection() as conn:
            if not result.ok:
                await changes.log_attempt(conn, entry)
                raise DeliveryFailed(f"{change.event} {change.path}: {result.error}")
            if not final:
                await changes.log_attempt(conn, entry)
                return
            if not await changes.acknowledge(
                conn, change, generation=self.watch.generation, log=entry
            ):
                raise WatchGone()
        self.delivered += 1

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
