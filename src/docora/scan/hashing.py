"""SHA-256, size and binary-ness of blobs, computed while `git cat-file --batch` streams them.

The parser is fed raw output in large pieces and never holds more than one piece plus
one partial blob: small blobs are hashed straight out of the buffer, large ones
incrementally, so a 200 MB file costs no more memory than a 2 KB one.
"""

from __future__ import annotations

import hashlib

from docora.binary import BinarySniffer, is_binary
from docora.git.spool import MAX_BLOB, SpoolWriter
from docora.store.scans import BlobFacts


class MalformedBatchOutput(ValueError):
    pass


def facts_of(content: memoryview | bytes) -> BlobFacts:
    """Facts of a whole blob held in memory."""
    return BlobFacts(hashlib.sha256(content).hexdigest(), len(content), is_binary(content))


class _Partial:
    """A blob larger than what the buffer holds: hashed and validated piece by piece (and
    gathered for the spool when the spool keeps blobs of its size)."""

    def __init__(self, oid: str, size: int, keep: bool) -> None:
        self.oid = oid
        self.size = size
        self.remaining = size
        self.digest = hashlib.sha256()
        self.sniffer = BinarySniffer()
        self.content = bytearray() if keep else None

    def update(self, piece: memoryview) -> None:
        self.digest.update(piece)
        self.sniffer.update(piece)
        if self.content is not None:
            self.content += piece
        self.remaining -= len(piece)

    def facts(self) -> BlobFacts:
        return BlobFacts(self.digest.hexdigest(), self.size, self.sniffer.finish())


class BatchFactsParser:
    """Turns `git cat-file --batch` output into (blob id, facts), however it is cut; with a
    spool, every blob it keeps is written there as it goes by (git/spool.py)."""

    def __init__(self, spool: SpoolWriter | None = None) -> None:
        self._buffer = bytearray()
        self._partial: _Partial | None = None
        self._spool = spool

    def feed(self, data: bytes) -> list[tuple[str, BlobFacts]]:
        self._buffer += data
        buffer, out, pos = self._buffer, [], 0
        end = len(buffer)
        view = memoryview(buffer)
        try:
            while pos < end:
                if self._partial is None:
                    newline = buffer.find(b"\n", pos)
                    if newline < 0:
                        break
                    oid, size = _header(bytes(buffer[pos:newline]))
                    start = newline + 1
                    if end - start > size:  # the whole blob and its trailing newline are here
                        with view[start : start + size] as content:
                            out.append((oid, facts_of(content)))
                            if self._spool is not None:
                                self._spool.add(oid, content)
                        pos = start + size + 1
                        continue
                    keep = self._spool is not None and size <= MAX_BLOB
                    self._partial, pos = _Partial(oid, size, keep), start
                partial = self._partial
                take = min(partial.remaining, end - pos)
                if take:
                    partial.update(view[pos : pos + take])
                    pos += take
                if partial.remaining or pos == end:
                    break
                pos += 1  # the newline after the blob
                out.append((partial.oid, partial.facts()))
                if self._spool is not None and partial.content is not None:
                    self._spool.add(partial.oid, partial.content)
                self._partial = None
        finally:
            view.release()
        del buffer[:pos]
        return out

    def finish(self) -> None:
        if self._partial is not None or self._buffer:
            raise MalformedBatchOutput("git cat-file output ended in the middle of a blob")


def _header(line: bytes) -> tuple[str, int]:
    fields = line.split()
    if len(fields) != 3 or fields[1] != b"blob":
        raise MalformedBatchOutput(f"cannot read blob: {line.decode(errors='replace')}")
    return fields[0].decode(), int(fields[2])
