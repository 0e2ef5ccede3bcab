"""Webhook bodies, byte-compatible with the original's `JSON.stringify` output.

Field order is the struct order; msgspec writes compact JSON with raw UTF-8, which is
what JSON.stringify produces for the strings we send (valid UTF-8, no lone surrogates).
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime

import msgspec


class RepositoryRef(msgspec.Struct):
    repository_id: str
    github_url: str
    owner: str
    name: str


class ChunkInfo(msgspec.Struct):
    id: str
    index: int
    total: int


class FileBody(msgspec.Struct, omit_defaults=True):
    path: str
    sha: str
    size: int
    content: str
    content_encoding: str | None = None
    chunk: ChunkInfo | None = None


class DeletedFile(msgspec.Struct):
    path: str
    sha: str


class CreateEvent(msgspec.Struct):
    repository: RepositoryRef
    file: FileBody
    commit_sha: str
    timestamp: str


class UpdateEvent(msgspec.Struct):
    repository: RepositoryRef
    file: FileBody
    previous_sha: str
    commit_sha: str
    timestamp: str


class DeleteEvent(msgspec.Struct):
    repository: RepositoryRef
    file: DeletedFile
    commit_sha: str
    timestamp: str


# Batch mode (SPEC 11): each event is {"event", "file"[, "previous_sha"]}; msgspec writes a
# struct's tag first, which is the order the contract gives.
class BatchCreate(msgspec.Struct, tag_field="event", tag="create"):
    file: FileBody


class BatchUpdate(msgspec.Struct, tag_field="event", tag="update"):
    file: FileBody
    previous_sha: str


class BatchDelete(msgspec.Struct, tag_field="event", tag="delete"):
    file: DeletedFile


BatchEvent = BatchCreate | BatchUpdate | BatchDelete


# Batch bodies are assembled piece by piece (batch_frame) so that their size is known as
# events are added; this struct is what they equal, and what the OpenAPI document shows.
class BatchBody(msgspec.Struct):
    """The body of `POST {base_url}/batch`: events in the single mode's order."""

    repository: RepositoryRef
    commit_sha: str
    timestamp: str
    events: list[BatchEvent]


def batch_frame(repository: RepositoryRef, commit_sha: str, timestamp: str) -> tuple[bytes, bytes]:
    """The bytes before the first event and after the last: a batch body is
    head + b",".join(encoded events) + tail, byte for byte encode(BatchBody(...))."""
    head = (
        b'{"repository":'
        + encode(repository)
        + b',"commit_sha":'
        + encode(commit_sha)
        + b',"timestamp":'
        + encode(timestamp)
        + b',"events":['
    )
    return head, b"]}"


class FailureInfo(msgspec.Struct):
    type: str
    message: str


class CircuitInfo(msgspec.Struct):
    status: str
    consecutive_failures: int
    threshold: int
    cooldown_until: str | None


class SyncFailedEvent(msgspec.Struct):
    event: str
    repository: RepositoryRef
    error: FailureInfo
    circuit_breaker: CircuitInfo
    retry_count: int
    timestamp: str


_encoder = msgspec.json.Encoder()


def encode(value: object) -> bytes:
    return _encoder.encode(value)


def iso_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and Z, as JavaScript's Date.toISOString()."""
    if moment is None:
        now = time.time()
        second = int(now)
        return f"{_second_text(second)}{int((now - second) * 1000):03d}Z"
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    """`YYYY-MM-DDTHH:MM:SS.` of a Unix second: formatted once a second, not once an event."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
