"""Git LFS objects cached on this host's disk, inside the mirror they belong to (SPEC 13).

`{mirror}/lfs/objects/{oid[0:2]}/{oid[2:4]}/{oid}`, git-lfs's own layout: being inside the
mirror, the cache is measured with it against `REPOS_MAX_BYTES`, held by the same `.use`
lock while a job reads it, and removed with it when it is evicted. A file is only ever
renamed into place after its size and SHA-256 were checked, so an object that exists is a
verified one. One download per object and host: whoever downloads holds the object's
lock, and whoever waited for it finds the file there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from docora.binary import BinarySniffer
from docora.git.mirrors import held

CACHE_DIR = "lfs"
READ_PIECE = 1024 * 1024


class IntegrityError(Exception):
    """Downloaded bytes that are not the object the pointer names."""


class ObjectCache:
    def __init__(self, mirror: Path) -> None:
        self.root = mirror / CACHE_DIR

    def path(self, oid: str) -> Path:
        return self.root / "objects" / oid[0:2] / oid[2:4] / oid

    def has(self, oid: str) -> bool:
        return self.path(oid).is_file()

    @contextlib.asynccontextmanager
    async def claimed(self, oid: str) -> AsyncIterator[None]:
        """The one right on this host to download `oid` (every process, every task)."""
        async with held(self.root / "locks" / oid, fcntl.LOCK_EX):
            yield

    def receiver(self, oid: str, size: int) -> Receiver:
        return Receiver(self, oid, size)

    def read(self, oid: str) -> bytes:
        return self.path(oid).read_bytes()

    def pieces(self, oid: str, piece: int = READ_PIECE) -> Iterator[bytes]:
        with self.path(oid).open("rb") as f:
            while chunk := f.read(piece):
                yield chunk

    def is_binary(self, oid: str) -> bool:
        """Binary detection over a cached object, read in pieces."""
        sniffer = BinarySniffer()
        for chunk in self.pieces(oid):
            sniffer.update(chunk)
            if sniffer.binary:
                break
        return sniffer.finish()


class Receiver:
    """A download's body on its way to the cache: written to a temporary file while it is
    hashed and sniffed, then checked and renamed into place (a transport BodySink)."""

    def __init__(self, cache: ObjectCache, oid: str, size: int) -> None:
        self._cache = cache
        self.oid = oid
        self.size = size
        self.received = 0
        self._digest = hashlib.sha256()
        self._sniffer = BinarySniffer()
        tmp = cache.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, prefix=oid[:16] + ".")
        self._file = os.fdopen(fd, "wb")
        self._temp = Path(name)

    def write(self, piece: bytes) -> None:
        self.received += len(piece)
        if self.received > self.size:
            raise IntegrityError(f"more than the pointer's {self.size} bytes")
        self._digest.update(piece)
        self._sniffer.update(piece)
        self._file.write(piece)

    def restart(self) -> None:
        """Drop what was received (the answer was a redirect, or failed)."""
        self._file.seek(0)
        self._file.truncate()
        self.received = 0
        self._digest = hashlib.sha256()
        self._sniffer = BinarySniffer()

    def commit(self) -> bool:
        """Check the bytes and move them into the cache; returns whether they are binary."""
        if self.received != self.size:
            raise IntegrityError(f"{self.received} bytes, the pointer says {self.size}")
        if self._digest.hexdigest() != self.oid:
            raise IntegrityError("the bytes' SHA-256 is not the pointer's oid")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        target = self._cache.path(self.oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._temp, target)
        return self._sniffer.finish()

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._temp.unlink(missing_ok=True)
