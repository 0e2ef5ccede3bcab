"""Packing events into batch requests (SPEC 11), bounded in events and in body bytes (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from docora.deliver.payloads import RepositoryRef, batch_frame
from docora.store.changes import Change

# `timestamp` is always this long (ISO 8601, milliseconds, Z): frames measured with it
# are exactly as long as the real ones.
_TIMESTAMP_SHAPE = "2000-01-01T00:00:00.000Z"


@dataclass
class Batch:
    changes: list[Change] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)
    event_bytes: int = 0  # the events and the commas between them

    def body(self, repository: RepositoryRef, commit_sha: str, timestamp: str) -> bytes:
        """The request body, built in one allocation (a batch is up to BATCH_MAX_BYTES)."""
        head, tail = batch_frame(repository, commit_sha, timestamp)
        parts = [head]
        for i, event in enumerate(self.events):
            if i:
                parts.append(b",")
            parts.append(event)
        parts.append(tail)
        return b"".join(parts)


class BatchPacker:
    """Collects encoded events in order and closes a batch when the next event would
    pass `max_events` or make the body longer than `max_bytes`."""

    def __init__(
        self, repository: RepositoryRef, commit_sha: str, *, max_events: int, max_bytes: int
    ) -> None:
        head, tail = batch_frame(repository, commit_sha, _TIMESTAMP_SHAPE)
        self._frame = len(head) + len(tail)
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._current = Batch()

    def fits_alone(self, event: bytes) -> bool:
        """False for an event that would overflow even an empty batch: it goes on its own,
        as a single-mode request."""
        return self._frame + len(event) <= self._max_bytes

    def add(self, change: Change, event: bytes) -> Batch | None:
        """Add an event that fits alone; returns the batch closed to make room, if any."""
        current = self._current
        grown = current.event_bytes + (1 if current.events else 0) + len(event)
        closed = None
        if current.events and (
            len(current.events) >= self._max_events or self._frame + grown > self._max_bytes
        ):
            closed = self.take()
            grown = len(event)
        self._current.changes.append(change)
        self._current.events.append(event)
        self._current.event_bytes = grown
        return closed

    def take(self) -> Batch | None:
        """The open batch (None when empty); the next event starts a new one."""
        if not self._current.events:
            return None
        batch, self._current = self._current, Batch()
        return batch
