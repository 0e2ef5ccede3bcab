"""How file bytes travel: text or base64, whole or in chunks."""

from __future__ import annotations

import base64
import math


def chunk_count(size: int, chunk_chars: int) -> int:
    """Pieces needed for `size` bytes once base64-encoded and cut every `chunk_chars`."""
    encoded = 4 * math.ceil(size / 3)
    return max(1, math.ceil(encoded / chunk_chars))


def raw_bytes_per_chunk(chunk_chars: int) -> int:
    """Raw bytes whose base64 is exactly `chunk_chars` characters (chunk_chars % 4 == 0).

    Encoding raw slices of this size and concatenating equals slicing the full base64
    text, so chunks can be produced while streaming.
    """
    return chunk_chars // 4 * 3


def base64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
