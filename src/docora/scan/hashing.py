"""SHA-256 and binary detection of blobs, streamed from git, each blob read at most once."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Mapping
from pathlib import Path

import msgspec

from docora.deliver.content import BINARY_SNIFF_BYTES
from docora.git.stream import BlobReader
from docora.scan.tree import TreeEntry


class ScannedFile(msgspec.Struct, frozen=True):
    path: str
    sha: str
    size: int
    blob_id: str
    is_binary: bool


class BlobFacts(msgspec.Struct, frozen=True, array_like=True):
    sha: str
    is_binary: bool


async def hash_entries(
    mirror: Path, entries: list[TreeEntry], known: Mapping[str, BlobFacts]
) -> tuple[list[ScannedFile], int]:
    """Attach SHA-256 and binary-ness to each entry; return them and how many blobs were read.

    Blobs in `known` (blob id -> facts from an earlier scan) are not read again.
    """
    files: list[ScannedFile] = []
    fresh: dict[str, BlobFacts] = {}
    async with BlobReader(mirror) as reader:
        for entry in entries:
            facts = known.get(entry.blob_id) or fresh.get(entry.blob_id)
            if facts is None:
                facts = fresh[entry.blob_id] = await read_facts(reader, entry.blob_id)
            files.append(
                ScannedFile(entry.path, facts.sha, entry.size, entry.blob_id, facts.is_binary)
            )
    return files, len(fresh)


async def read_facts(reader: BlobReader, blob_id: str) -> BlobFacts:
    """One streaming pass: the digest, and whether the bytes are binary per the wire rules
    (a NUL in the first 8,000 bytes, or not valid UTF-8 anywhere)."""
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")("strict")
    binary = False
    seen = 0
    size = await reader.open(blob_id)
    async for piece in reader.chunks(size):
        digest.update(piece)
        if not binary:
            if seen < BINARY_SNIFF_BYTES and b"\x00" in piece[: BINARY_SNIFF_BYTES - seen]:
                binary = True
            else:
                try:
                    utf8.decode(piece)
                except UnicodeDecodeError:
                    binary = True
        seen += len(piece)
    if not binary:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            binary = True
    return BlobFacts(digest.hexdigest(), binary)
