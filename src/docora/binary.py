"""What counts as a binary file: one rule for the scanner (which records it) and the
sender (which base64-encodes such files). SPEC section 4."""

from __future__ import annotations

import codecs

BINARY_SNIFF_BYTES = 8000


def has_nul(data: bytes | memoryview, already_seen: int = 0) -> bool:
    """A NUL within the first BINARY_SNIFF_BYTES of the file; `data` starts `already_seen`
    bytes into it."""
    if already_seen >= BINARY_SNIFF_BYTES:
        return False
    return b"\x00" in bytes(data[: BINARY_SNIFF_BYTES - already_seen])


def is_binary(data: bytes | memoryview) -> bool:
    """Binary when the first 8,000 bytes hold a NUL, or the bytes are not valid UTF-8."""
    if has_nul(data):
        return True
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return True
    return False


class BinarySniffer:
    """`is_binary` for content that arrives in pieces: a NUL in the first bytes, or bytes
    that are not UTF-8 (a character may be cut between two pieces)."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._seen = 0
        self.binary = False

    def update(self, piece: bytes | memoryview) -> None:
        if not self.binary:
            if has_nul(piece, self._seen):
                self.binary = True
            else:
                try:
                    self._utf8.decode(piece)
                except UnicodeDecodeError:
                    self.binary = True
        self._seen += len(piece)

    def finish(self) -> bool:
        if not self.binary:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self.binary = True
        return self.binary
