"""The files of a commit: regular blobs only, ignore rules applied, sizes checked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import msgspec

from docora.git.stream import BlobReader, records
from docora.scan.ignore import IGNORE_FILE, ignore_matcher

log = logging.getLogger(__name__)

REGULAR_MODES = (b"100644", b"100755")


class TreeEntry(msgspec.Struct, frozen=True):
    path: str
    blob_id: str
    size: int


class SkippedFile(msgspec.Struct, frozen=True):
    path: str
    reason: str


class Tree(msgspec.Struct):
    entries: list[TreeEntry]
    skipped: list[SkippedFile]


def _parse(record: bytes) -> tuple[bytes, bytes, str, int, bytes]:
    meta, _, raw_path = record.partition(b"\t")
    mode, kind, oid, size = meta.split()
    return mode, kind, oid.decode(), int(size) if size != b"-" else 0, raw_path


async def read_tree(mirror: Path, commit: str, *, max_file_size: int) -> Tree:
    """List every regular file of `commit`, minus what `.docoraignore` excludes.

    Symlinks and submodules are never followed nor sent; paths that are not UTF-8
    cannot be represented in the JSON payload and are skipped, as are files above
    `max_file_size`. Skips are reported, never silent.
    """
    candidates: list[TreeEntry] = []
    skipped: list[SkippedFile] = []
    ignore_blob: str | None = None
    args = ["ls-tree", "-r", "-z", "-l", "--full-tree", commit]
    async for record in records(args, mirror):
        mode, kind, oid, size, raw_path = _parse(record)
        try:
            path = raw_path.decode("utf-8")
        except UnicodeDecodeError:
            shown = raw_path.decode("utf-8", errors="replace")
            skipped.append(SkippedFile(path=shown, reason="path is not valid UTF-8"))
            continue
        if kind != b"blob" or mode not in REGULAR_MODES:
            reason = (
                "submodule"
                if kind == b"commit"
                else "symlink"
                if mode == b"120000"
                else "not a regular file"
            )
            skipped.append(SkippedFile(path=path, reason=reason))
            continue
        if path == ".git" or path.startswith(".git/") or "/.git/" in path:
            continue
        if path == IGNORE_FILE:
            ignore_blob = oid
        candidates.append(TreeEntry(path=path, blob_id=oid, size=size))
    is_ignored = await _ignore_rules(mirror, ignore_blob)
    entries = []
    for entry in candidates:
        if is_ignored(entry.path):
            continue
        if entry.size > max_file_size:
            log.warning("skipping %s: %d bytes is over MAX_FILE_SIZE_BYTES", entry.path, entry.size)
            skipped.append(
                SkippedFile(path=entry.path, reason=f"larger than {max_file_size} bytes")
            )
            continue
        entries.append(entry)
    return Tree(entries=entries, skipped=skipped)


async def _ignore_rules(mirror: Path, blob_id: str | None) -> Callable[[str], bool]:
    if blob_id is None:
        return ignore_matcher(None)
    async with BlobReader(mirror) as reader:
        text = (await reader.read(blob_id)).decode("utf-8", errors="replace")
    return ignore_matcher(text)
