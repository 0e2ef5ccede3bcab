"""Building the requests for one change: bodies, chunks and stable delivery ids (pure)."""

from __future__ import annotations

import hashlib
import uuid

import msgspec

from docora.deliver.content import base64_text
from docora.deliver.payloads import (
    BatchCreate,
    BatchDelete,
    BatchUpdate,
    ChunkInfo,
    CreateEvent,
    DeletedFile,
    DeleteEvent,
    FileBody,
    RepositoryRef,
    UpdateEvent,
    encode,
)
from docora.store.changes import Change

_NAMESPACE = uuid.UUID("6f1c3a52-58d4-4c1e-9a57-0d0c7a1e2b90")
_NAMESPACED = hashlib.sha1(_NAMESPACE.bytes, usedforsecurity=False)


def _uuid5(name: str) -> uuid.UUID:
    """uuid.uuid5(_NAMESPACE, name), without hashing the namespace again each time (an id
    per event: this is on the sending path)."""
    digest = _NAMESPACED.copy()
    digest.update(name.encode())
    raw = bytearray(digest.digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return uuid.UUID(bytes=bytes(raw))


class WatchKey(msgspec.Struct, frozen=True):
    app_id: str
    repository_id: str
    generation: int
    # The delivery's commit and the version of the watch's path filter: an event that
    # happens again (a file deleted and re-added in a later commit, or excluded and
    # included again by filters) is a new event, with a new id.
    commit_sha: str = ""
    paths_version: int = 0

    def scope(self) -> str:
        return (
            f"{self.app_id}|{self.repository_id}|{self.generation}|"
            f"{self.commit_sha}|{self.paths_version}"
        )


def delivery_id(watch: WatchKey, change: Change, index: int = 0) -> uuid.UUID:
    """The same request always gets the same id, across retries and worker crashes.

    The watch generation is part of it: after a reset, the full resend gets new ids, so a
    receiver that de-duplicates on ids still takes it; so are the commit and the filter's
    version (WatchKey).
    """
    return _uuid5(f"{watch.scope()}|{change.event}|{change.path}|{change.sha}|{index}")


def batch_delivery_id(watch: WatchKey, changes: list[Change]) -> uuid.UUID:
    """Stable for the same events of the same watch generation: a retry of a batch that
    resumes at the same event rebuilds the same batch and sends it under the same id."""
    digest = hashlib.sha256()
    for change in changes:
        digest.update(f"{change.event}\0{change.path}\0{change.sha}\n".encode())
    return _uuid5(f"{watch.scope()}|batch|{digest.hexdigest()}")


def chunk_group_id(watch: WatchKey, change: Change) -> str:
    return str(_uuid5(f"chunk|{delivery_id(watch, change)}"))


def delete_body(repo: RepositoryRef, change: Change, commit_sha: str, timestamp: str) -> bytes:
    return encode(
        DeleteEvent(
            repository=repo,
            file=DeletedFile(path=change.path, sha=change.sha),
            commit_sha=commit_sha,
            timestamp=timestamp,
        )
    )


def file_struct(
    change: Change, *, content: str, encoding: str | None, chunk: ChunkInfo | None = None
) -> FileBody:
    return FileBody(
        path=change.path,
        sha=change.sha,
        size=change.size,
        content=content,
        content_encoding=encoding,
        chunk=chunk,
    )


def whole_file(change: Change, data: bytes) -> FileBody:
    """The file of a create or update, content whole: text as is, binary as base64."""
    if change.is_binary:
        return file_struct(change, content=base64_text(data), encoding="base64")
    return file_struct(change, content=data.decode("utf-8"), encoding=None)


def file_body(
    repo: RepositoryRef, change: Change, commit_sha: str, timestamp: str, file: FileBody
) -> bytes:
    """The single-mode body of a create or update."""
    if change.event == "update":
        assert change.previous_sha is not None
        event = UpdateEvent(
            repository=repo,
            file=file,
            previous_sha=change.previous_sha,
            commit_sha=commit_sha,
            timestamp=timestamp,
        )
        return encode(event)
    return encode(
        CreateEvent(repository=repo, file=file, commit_sha=commit_sha, timestamp=timestamp)
    )


def batch_event(change: Change, file: FileBody | None) -> bytes:
    """One event of a batch body; `file` is None for a delete."""
    if change.event == "delete":
        return encode(BatchDelete(file=DeletedFile(path=change.path, sha=change.sha)))
    assert file is not None
    if change.event == "update":
        assert change.previous_sha is not None
        return encode(BatchUpdate(file=file, previous_sha=change.previous_sha))
    return encode(BatchCreate(file=file))
