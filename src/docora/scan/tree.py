"""Which files of a commit belong in the snapshot: regular blobs, ignore rules, size limit.

Rows are produced as git writes them: the whole tree for a full scan, or only the paths
`git diff-tree` reports between the last snapshot and the new commit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from docora.git.command import git_environment, run_git_async
from docora.git.stream import BlobReader, batch_check_sizes, records
from docora.scan.ignore import IGNORE_FILE, ignore_matcher
from docora.scan.transforms import TreeEntry, apply_transforms
from docora.store.scans import WorkRow

log = logging.getLogger(__name__)

REGULAR_MODES = ("100644", "100755")
Ignore = Callable[[str], bool]


def _skip_reason(mode: str, kind: str) -> str | None:
    if kind == "commit":
        return "submodule"
    if mode == "120000":
        return "symlink"
    if kind != "blob" or mode not in REGULAR_MODES:
        return "not a regular file"
    return None


def classify(
    mode: str, kind: str, oid: str, size: int, path: str, *, ignored: Ignore, max_size: int
) -> WorkRow:
    """Decide one tree entry (pure)."""
    if path == ".git" or path.startswith(".git/") or "/.git/" in path or ignored(path):
        return WorkRow(path, deleted=True)
    reason = _skip_reason(mode, kind)
    if reason is None and size > max_size:
        log.warning("skipping %s: %d bytes is over MAX_FILE_SIZE_BYTES", path, size)
        reason = f"larger than {max_size} bytes"
    if reason is not None:
        return WorkRow(path, skip_reason=reason)
    entry = apply_transforms(TreeEntry(path=path, blob_id=oid, size=size))
    if entry is None:
        return WorkRow(path, deleted=True)
    return WorkRow(entry.path, blob_id=entry.blob_id, size=entry.size)


def _decode_path(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), False


async def load_ignore(mirror: Path, commit: str) -> Ignore:
    """The commit's `.docoraignore` rules: one `cat-file --batch` request, which answers
    "missing" when there is no such file."""
    async with BlobReader(mirror) as reader:
        content = await reader.read_if_present(f"{commit}:{IGNORE_FILE}")
    if content is None:
        return ignore_matcher(None)
    return ignore_matcher(content.decode("utf-8", errors="replace"))


async def full_rows(mirror: Path, commit: str, *, max_size: int) -> AsyncIterator[WorkRow]:
    """Every path of `commit` (ls-tree gives sizes, so nothing is read here)."""
    ignored = await load_ignore(mirror, commit)
    args = ["ls-tree", "-r", "-z", "-l", "--full-tree", commit]
    async for record in records(args, mirror):
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        path, valid = _decode_path(raw_path)
        if not valid:
            yield WorkRow(path, skip_reason="path is not valid UTF-8")
            continue
        size_int = int(size) if size != "-" else 0
        yield classify(mode, kind, oid, size_int, path, ignored=ignored, max_size=max_size)


async def ignore_file_changed(mirror: Path, old: str, new: str) -> bool:
    out = await run_git_async(
        ["diff-tree", "--name-only", "-z", old, new, "--", IGNORE_FILE],
        env=git_environment(),
        timeout_ms=30_000,
        cwd=str(mirror),
    )
    return bool(out.strip("\0\n"))


async def changed_rows(
    mirror: Path, old: str, new: str, *, max_size: int
) -> AsyncIterator[WorkRow]:
    """Only the paths that differ between two commits (ignore rules unchanged)."""
    ignored = await load_ignore(mirror, new)
    changes: list[tuple[str, str, bytes]] = []  # (new mode, new oid, raw path); deletes: mode 0
    pending: bytes | None = None
    args = ["diff-tree", "-r", "-z", "--raw", "--no-renames", "--no-commit-id", old, new]
    async for record in records(args, mirror):
        if pending is None:
            pending = record
            continue
        _, new_mode, _, new_oid, _ = pending.decode().lstrip(":").split(" ")
        changes.append((new_mode, new_oid, record))
        pending = None
    sizes = await batch_check_sizes(
        mirror, sorted({oid for mode, oid, _ in changes if mode in REGULAR_MODES})
    )
    for mode, oid, raw_path in changes:
        path, valid = _decode_path(raw_path)
        if mode == "000000":
            yield WorkRow(path, deleted=True)
        elif not valid:
            yield WorkRow(path, skip_reason="path is not valid UTF-8")
        else:
            kind = "commit" if mode == "160000" else "blob"
            size = sizes.get(oid, 0)
            yield classify(mode, kind, oid, size, path, ignored=ignored, max_size=max_size)
