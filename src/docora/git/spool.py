"""Blob contents a scan has just read, kept on this host's disk for the deliveries that
follow, so that a blob is inflated once per sync rather than once to hash it and again to
send it (issue 21).

A scan writes `{mirror}/docora-spool/{commit}.data` (the contents, back to back) and
`{commit}.index` (records: raw blob id, offset, size), rewritten and renamed into place each
time the scan publishes (a part of a progressive snapshot, then the end), after the data it
describes is flushed: an index that exists describes data a reader can pread. Only blobs of
at most MAX_BLOB bytes are kept: larger ones are sent in chunks, streamed from git. Being
inside the mirror, a spool is measured with it against REPOS_MAX_BYTES and removed with it;
a newer scan removes the older spools, and the last delivery of a commit removes its spool.
A delivery on a host without the spool (another worker host, an evicted mirror) reads from
git as before; one that finds the spool checks each blob's SHA-256 against the snapshot
before sending it.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from array import array
from pathlib import Path

SPOOL_DIR = "docora-spool"
MAX_BLOB = 1024 * 1024
_HEADER = struct.Struct("<4sB")  # magic, blob id length in bytes
_MAGIC = b"DSP1"
_POSITION = struct.Struct("<QQ")  # offset, size


def spool_dir(mirror: Path) -> Path:
    return mirror / SPOOL_DIR


def remove(mirror: Path, commit: str | None = None) -> None:
    """Remove the spool of `commit`, or every spool of the mirror (None). Readers that
    have it open go on reading it (its files are unlinked, not truncated)."""
    directory = spool_dir(mirror)
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if commit is None or path.name.split(".", 1)[0] == commit:
            path.unlink(missing_ok=True)


class SpoolWriter:
    """Collects blobs as a scan reads them; `finish` publishes the spool."""

    def __init__(self, mirror: Path, commit: str) -> None:
        remove(mirror)  # an older commit's spool: its deliveries have it open, if any
        self._dir = spool_dir(mirror)
        self._dir.mkdir(exist_ok=True)
        self._commit = commit
        self._data = (self._dir / f"{commit}.data").open("wb", buffering=1 << 20)
        self._offset = 0
        self._ids = bytearray()  # raw blob ids, back to back
        self._positions = array("Q")  # offset, size per blob
        self._width = 0
        self._lock = threading.Lock()
        self.blobs = 0

    def add(self, blob_id: str, content: bytes | memoryview) -> None:
        if len(content) > MAX_BLOB:
            return
        raw = bytes.fromhex(blob_id)
        with self._lock:  # a scan's readers add from threads of their own (git/stream.py)
            self._width = self._width or len(raw)
            if len(raw) != self._width:
                return  # one id length per repository; never mixed, but never misread either
            self._data.write(content)
            self._ids += raw
            self._positions.extend((self._offset, len(content)))
            self._offset += len(content)
            self.blobs += 1

    def publish(self) -> None:
        """Make the blobs added so far readable (a progressive snapshot publishes a part):
        the data is flushed, then an index of all of it is renamed into place. The index
        only grows, record by record, so a reader refreshes by parsing what it lacks."""
        self._data.flush()
        width = self._width or 20
        temporary = self._dir / f"{self._commit}.index.tmp"
        with temporary.open("wb", buffering=1 << 20) as index:
            index.write(_HEADER.pack(_MAGIC, width))
            for i in range(self.blobs):
                index.write(self._ids[i * width : (i + 1) * width])
                index.write(_POSITION.pack(self._positions[2 * i], self._positions[2 * i + 1]))
        temporary.rename(self._dir / f"{self._commit}.index")

    def finish(self) -> None:
        self.publish()
        self._data.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._data.close()
        remove(self._dir.parent, self._commit)


class SpoolReader:
    """One commit's spool, opened: its index read into a dict (a blob id to its place:
    some 5 MB for 50,000 blobs), each blob read with one pread. Keeps working if the
    spool is removed meanwhile."""

    def __init__(self, index_path: Path, data_path: Path, data_fd: int) -> None:
        self._index_path = index_path
        self._data_path = data_path
        self._data_fd = data_fd
        self._places: dict[bytes, tuple[int, int]] = {}
        self._parsed = _HEADER.size  # bytes of the index parsed so far

    @classmethod
    def open(cls, mirror: Path, commit: str) -> SpoolReader | None:
        directory = spool_dir(mirror)
        data_path = directory / f"{commit}.data"
        try:
            data_fd = os.open(data_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # none: nothing spooled for this commit on this host
            return None
        reader = cls(directory / f"{commit}.index", data_path, data_fd)
        if not reader.refresh():
            reader.close()
            return None
        return reader

    def refresh(self) -> bool:
        """Take in the blobs published since the last look (SpoolWriter.publish). False
        when the spool has no readable index (gone, or none published yet)."""
        try:
            if os.stat(self._data_path).st_ino != os.fstat(self._data_fd).st_ino:
                # Another scan of the commit started over: its index is of other data.
                return bool(self._places)
            index = self._index_path.read_bytes()
        except OSError:
            return bool(self._places)
        if len(index) < _HEADER.size or _HEADER.unpack_from(index, 0)[0] != _MAGIC:
            return False
        _, width = _HEADER.unpack_from(index, 0)
        record = width + _POSITION.size
        for start in range(self._parsed, len(index) - record + 1, record):
            self._places[index[start : start + width]] = _POSITION.unpack_from(index, start + width)
            self._parsed = start + record
        return True

    def place(self, blob_id: str) -> tuple[int, int] | None:
        """(offset, size) of the blob in the spool, or None when it does not hold it."""
        try:
            return self._places.get(bytes.fromhex(blob_id))
        except ValueError:
            return None

    def read(self, place: tuple[int, int]) -> bytes | None:
        offset, size = place
        data = os.pread(self._data_fd, size, offset)
        return data if len(data) == size else None

    def close(self) -> None:
        os.close(self._data_fd)
