"""Webhook bodies, byte-compatible with the original's `JSON.stringify` output.

Field order is the struct order; msgspec writes compact JSON with raw UTF-8, which is
what JSON.stringify produces for the strings we send (valid UTF-8, no lone surrogates).
"""

from __future__ import annotations

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


def encode(event: msgspec.Struct) -> bytes:
    return _encoder.encode(event)


def iso_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and Z, as JavaScript's Date.toISOString()."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
