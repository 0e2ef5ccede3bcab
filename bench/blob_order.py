"""Reading every blob of a repository with `git cat-file --batch`: in path order with git's
default caches, and in delta chain order with the bounded reader a sync uses (issue 21).

    python bench/blob_order.py [--files 50000]

Builds the benchmark's repository (bench/synth.py, repacked as a host would), fetches it
into a mirror as a sync does, then prints each reading's wall time and cat-file's peak
RSS, plus the delta-base lookup chain order needs.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.synth import fetched_mirror  # noqa: E402
from docora.git.stream import BOUNDED_READER, delta_bases  # noqa: E402
from docora.scan import order  # noqa: E402


def read_all(mirror: Path, oids: list[str], config: tuple[str, ...]) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one cat-file reading `oids` in the order given."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "git", *config, "cat-file", "--batch"],
        cwd=mirror,
        input="".join(f"{oid}\n" for oid in oids).encode(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
    )
    return time.perf_counter() - started, int(done.stderr.split()[-1]) / 1024


def chain_order(mirror: Path, oids: list[str]) -> list[str]:
    bases = asyncio.run(delta_bases(mirror, oids))
    return [oid for tree in order.chains(oids, bases) for oid in tree]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docora-blob-order-") as tmp:
        mirror, _ = fetched_mirror(Path(tmp), args.files, text_size=(3600, 4400))
        listing = subprocess.run(
            ["git", "ls-tree", "-r", "main"], cwd=mirror, capture_output=True, text=True
        ).stdout
        oids = [line.split()[2] for line in listing.splitlines()]
        packed = sum(p.stat().st_size for p in (mirror / "objects" / "pack").glob("*.pack"))
        print(f"{len(oids):,} blobs, {packed / 1e6:.0f} MB packed")
        started = time.perf_counter()
        chained = [
            oid
            for tree in order.chains(oids, asyncio.run(delta_bases(mirror, oids)))
            for oid in tree
        ]
        print(f"  delta-base lookup and chain order: {time.perf_counter() - started:.2f} s")
        small_cache = ("-c", "core.deltaBaseCacheLimit=16m")
        for label, ids, config in (
            ("path order, git's default caches", oids, ()),
            ("path order, a 16 MB delta-base cache", oids, small_cache),
            ("chain order, the bounded reader", chained, BOUNDED_READER),
        ):
            seconds, rss = read_all(mirror, ids, config)
            print(f"  {label}: {seconds:.2f} s, cat-file peak RSS {rss:.0f} MB")
        for window in (4000, 12000):
            windowed = []
            for start in range(0, len(oids), window):
                part = oids[start : start + window]
                windowed += [
                    oid
                    for t in order.chains(part, asyncio.run(delta_bases(mirror, part)))
                    for oid in t
                ]
            seconds, rss = read_all(mirror, windowed, BOUNDED_READER)
            print(
                f"  chain order within windows of {window:,} paths, bounded reader: "
                f"{seconds:.2f} s, {rss:.0f} MB"
            )


if __name__ == "__main__":
    main()
