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
