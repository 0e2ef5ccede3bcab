"""This host's mirrors as a bounded cache: who is using one, how many bytes each takes, and
which to remove when `REPOS_MAX_BYTES` is exceeded (SPEC 12).

Beside each mirror `{branch}.git` lie two lock files, taken with flock(2) so that every
worker process on the host (and every task in one process: a lock belongs to the open
file, not the process) sees them:

- `{branch}.git.use`: held shared by each sync or delivery for as long as it reads or
  writes the mirror, exclusive (never waited for) by the eviction that removes it. Its
  modification time is the mirror's last use; its content, the mirror's size in bytes as
  measured after its last fetch.
- `{branch}.git.write`: held exclusive by whoever fetches into the mirror, so two fetches
  (a sync's and a delivery's on another watch) never write it at once and a lock file
  that git left behind is known to be stale.

An eviction removes the mirror and both lock files while it holds `.use` exclusive; a
waiter that had opened the old file notices (its inode is no longer the path's) and opens
the new one. A removed mirror comes back by fetch the next time a job needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

USE_SUFFIX = ".use"
WRITE_SUFFIX = ".write"
_POLL_START_S = 0.002
_POLL_MAX_S = 0.05


def use_file(mirror: Path) -> Path:
    return mirror.with_name(mirror.name + USE_SUFFIX)


def write_file(mirror: Path) -> Path:
    return mirror.with_name(mirror.name + WRITE_SUFFIX)


def _try_lock(path: Path, mode: int, *, create: bool) -> int | None:
    """`path` opened and flocked in `mode` without waiting, or None when another holds it
    (or it is gone). The descriptor is of the file at `path` now: not one that an eviction
    removed between our open and our lock."""
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path).st_ino:
            return fd
    except (BlockingIOError, FileNotFoundError):
        pass
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


@contextlib.asynccontextmanager
async def held(path: Path, mode: int) -> AsyncIterator[int]:
    """Hold a flock on `path` (created if missing). Polls rather than blocks, so that a
    cancelled task never leaves a thread waiting for a lock."""
    delay = _POLL_START_S
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _try_lock(path, mode, create=True)
        if fd is not None:
            break
        await asyncio.sleep(delay)
        delay = min(2 * delay, _POLL_MAX_S)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def using(mirror: Path) -> AsyncIterator[None]:
    """Hold the mirror against eviction while a job reads or fetches it; mark it used."""
    async with held(use_file(mirror), fcntl.LOCK_SH) as fd:
        os.utime(fd)
        yield


@contextlib.asynccontextmanager
async def writing(mirror: Path) -> AsyncIterator[None]:
    """The one writer of the mirror on this host (held around a fetch)."""
    async with held(write_file(mirror), fcntl.LOCK_EX):
        yield


def disk_bytes(directory: Path) -> int:
    """Bytes the directory's files take on disk."""
    total = 0
    stack = [directory]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def record_size(mirror: Path) -> int:
    """Measure the mirror and write its size into its use file (call while using it)."""
    size = disk_bytes(mirror)
    fd = os.open(use_file(mirror), os.O_WRONLY | os.O_CLOEXEC)
    try:
        data = str(size).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
    return size


@dataclass(frozen=True)
class Entry:
    mirror: Path
    size: int
    last_used: float


def _mirror_dirs(base: Path) -> list[Path]:
    """The `*.git` directories under base, without walking into any of them (a mirror's
    object store can hold many files)."""
    found: list[Path] = []
    stack = [base]
    while stack:
        try:
            listing = list(os.scandir(stack.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in listing:
            if not entry.is_dir(follow_symlinks=False):
                continue
            (found if entry.name.endswith(".git") else stack).append(Path(entry.path))
    return found


def entries(base: Path) -> list[Entry]:
    """Every mirror of this host, least recently used first. A mirror without a use file
    (made before they existed) gets one, so that the bound counts it."""
    found = []
    for mirror in _mirror_dirs(base):
        lock = use_file(mirror)
        try:
            stat = lock.stat()
            text = lock.read_text().strip()
        except FileNotFoundError:
            if not (mirror / "HEAD").exists():
                continue  # being created, or half removed
            text = str(disk_bytes(mirror))
            lock.write_text(text)
            stat = lock.stat()
        size = int(text) if text.isdigit() else disk_bytes(mirror)
        found.append(Entry(mirror, size, stat.st_mtime))
    found.sort(key=lambda e: e.last_used)
    return found


def _remove_files(mirror: Path) -> None:
    """The mirror and its lock files; call holding its use lock exclusive."""
    shutil.rmtree(mirror, ignore_errors=True)
    write_file(mirror).unlink(missing_ok=True)
    use_file(mirror).unlink(missing_ok=True)


def _try_evict(entry: Entry) -> bool:
    """Remove a mirror nobody uses (its use lock free); False when it is in use."""
    fd = _try_lock(use_file(entry.mirror), fcntl.LOCK_EX, create=False)
    if fd is None:
        return False
    try:
        _remove_files(entry.mirror)
    finally:
        os.close(fd)
    return True


@dataclass(frozen=True)
class Accounting:
    total_bytes: int  # after evictions
    evicted: list[Path]


def enforce_bound(base: Path, max_bytes: int | None) -> tuple[Accounting, dict[Path, int]]:
    """Remove least recently used mirrors not in use until the host's mirrors fit in
    `max_bytes` (no bound when None); mirrors in use stay whatever their size. Returns
    the accounting and the size of every mirror kept."""
    found = entries(base)
    total = sum(e.size for e in found)
    evicted: list[Path] = []
    if max_bytes is not None:
        for entry in found:
            if total <= max_bytes:
                break
            if _try_evict(entry):
                total -= entry.size
                evicted.append(entry.mirror)
    gone = set(evicted)
    return Accounting(total, evicted), {e.mirror: e.size for e in found if e.mirror not in gone}


class HostMirrors:
    """This process's running account of the host's mirrors: a fetch updates its own
    mirror's size; the base path is walked again (and LRU mirrors evicted) only when the
    account exceeds the bound or is `rewalk_s` old, since other processes on the host
    fetch and evict too. A walk reads one small file per mirror; a fetch costs far more."""

    def __init__(self, base: Path, max_bytes: int | None, rewalk_s: float = 60.0) -> None:
        self.base = base
        self.max_bytes = max_bytes
        self.rewalk_s = rewalk_s
        self._sizes: dict[Path, int] = {}
        self._total = 0
        self._walked_at: float | None = None
        self._lock = threading.Lock()

    def fetched(self, mirror: Path) -> Accounting:
        """Account for a mirror just fetched (call while using it)."""
        size = record_size(mirror)
        with self._lock:
            self._total += size - self._sizes.get(mirror, 0)
            self._sizes[mirror] = size
            stale = self._walked_at is None or time.monotonic() - self._walked_at > self.rewalk_s
            if not stale and (self.max_bytes is None or self._total <= self.max_bytes):
                return Accounting(self._total, [])
            return self._walk()

    def walk(self) -> Accounting:
        with self._lock:
            return self._walk()

    def _walk(self) -> Accounting:
        accounting, self._sizes = enforce_bound(self.base, self.max_bytes)
        self._total = accounting.total_bytes
        self._walked_at = time.monotonic()
        return accounting


async def remove(base: Path, mirror: Path) -> bool:
    """Remove a mirror for good (its repository is gone), once nobody uses it; True if
    one was there."""
    root = base.resolve()
    if root not in mirror.resolve().parents or not mirror.name.endswith(".git"):
        raise ValueError(f"{mirror} is not a mirror under {root}")
    async with held(use_file(mirror), fcntl.LOCK_EX):
        existed = mirror.exists()
        _remove_files(mirror)
        return existed
