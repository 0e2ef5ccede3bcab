"""The memory of a process with every process it starts, sampled while it works: a worker
and its git processes (bench/throughput.py, tests/test_git_memory.py)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def tree_rss(pid: int) -> list[tuple[str, int]]:
    """(command, RSS bytes) of `pid` and every process under it right now: the worker
    and the git processes it starts (fetch, index-pack, ls-tree, cat-file)."""
    page = os.sysconf("SC_PAGE_SIZE")
    found, pending = [], [pid]
    own_command = _command(pid)
    while pending:
        current = pending.pop()
        try:
            resident = int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            argv = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # it exited meanwhile
        if current != pid and argv == own_command:
            continue  # forked, not yet exec'd: the worker's own pages, shared, not more
        words = [a.decode(errors="replace") for a in argv if a and not a.startswith(b"-")]
        name = "worker" if current == pid else " ".join(w.rsplit("/", 1)[-1] for w in words[:2])
        found.append((name, resident))
    return found


def _command(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


class PeakRss:
    """Samples the worker's process tree every 10 ms: the peak of the worker alone and of
    the tree's sum (git's memory counts)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.worker = self.tree = 0
        self.at_peak: list[tuple[str, int]] = []
        self.child: tuple[str, int] = ("", 0)  # the largest process it started, at its peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            processes = tree_rss(self.pid)
            total = sum(rss for _, rss in processes)
            self.worker = max(self.worker, next((r for n, r in processes if n == "worker"), 0))
            for name, rss in processes:
                if name != "worker" and rss > self.child[1]:
                    self.child = (name, rss)
            if total > self.tree:
                self.tree, self.at_peak = total, processes

    def composition(self) -> str:
        return ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in self.at_peak)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
