"""One watch's delivery alone: `WatchDelivery.run` over a prepared snapshot, to the Node
receiver (bench/receiver.js --verify), with no sync job, API or scheduler around it.

    python bench/delivery_loop.py [--files 10000] [--batch] [--no-spool]

Builds the benchmark's repository, fetches it into a mirror, writes its snapshot rows (and
the spool a sync would leave, unless --no-spool: then blobs come from git) into a throwaway
embedded Postgres, then delivers every file at delivery_concurrency 8 and prints events/s
and this process's CPU per event: what one worker core can do once the snapshot exists.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import KEY, node_receiver  # noqa: E402
from bench.synth import fetched_mirror  # noqa: E402
from docora.db import embedded_postgres  # noqa: E402
from docora.deliver.client import WebhookSender  # noqa: E402
from docora.deliver.events import WatchKey  # noqa: E402
from docora.deliver.payloads import RepositoryRef  # noqa: E402
from docora.deliver.run import BatchPolicy, ChunkPolicy, Target, WatchDelivery  # noqa: E402
from docora.git.spool import SpoolReader, SpoolWriter  # noqa: E402
from docora.migrate import apply_migrations  # noqa: E402
from docora.scan.hashing import facts_of  # noqa: E402
from tests.pg import insert_watch  # noqa: E402

APP, REPO = "app_" + "1" * 24, "repo_" + "1" * 24


def snapshot(url: str, mirror: Path, commit: str, spool: bool) -> int:
    """The snapshot rows a sync would write, and its spool; returns the file count."""
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "main"], cwd=mirror, capture_output=True, text=True
    ).stdout.splitlines()
    entries = [(line.split("\t", 1)[1], line.split()[2]) for line in listing]
    output = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=mirror,
        input="".join(f"{oid}\n" for _, oid in entries).encode(),
        capture_output=True,
        check=True,
    ).stdout
    writer = SpoolWriter(mirror, commit) if spool else None
    rows, pos = [], 0
    for path, oid in entries:
        newline = output.index(b"\n", pos)
        size = int(output[pos:newline].split()[2])
        content = output[newline + 1 : newline + 1 + size]
        pos = newline + 2 + size
        facts = facts_of(content)
        rows.append((REPO, path, facts.sha, facts.size, oid, facts.is_binary))
        if writer is not None:
            writer.add(oid, content)
    if writer is not None:
        writer.finish()
    with psycopg.connect(url, autocommit=True) as db:
        insert_watch(db, APP, REPO)
        db.execute(
            "INSERT INTO snapshots (repository_id, commit_sha) VALUES (%s, %s)", (REPO, commit)
        )
        copy = "COPY snapshot_files (repository_id, path, sha, size, blob_id, is_binary) FROM STDIN"
        with db.cursor().copy(copy) as rows_in:
            for row in rows:
                rows_in.write_row(row)
        db.execute("ANALYZE")
    return len(rows)


async def deliver(
    url: str, port: int, mirror: Path, commit: str, batch: bool
) -> tuple[int, float, float]:
    pool = AsyncConnectionPool(url, min_size=2, max_size=6, kwargs={"autocommit": True}, open=False)
    await pool.open()
    sender = WebhookSender(timeout_ms=30_000, allow_private=True)
    delivery = WatchDelivery(
        pool=pool,
        sender=sender,
        target=Target(
            app_id=APP,
            base_url=f"http://127.0.0.1:{port}/hooks",
            key=KEY,
            concurrency=8,
            batches=BatchPolicy(500, 4 * 1024 * 1024) if batch else None,
        ),
        watch=WatchKey(APP, REPO, 0, commit_sha=commit),
        repository=RepositoryRef(REPO, "https://git.example/o/n", "o", "n"),
        commit_sha=commit,
        mirror=mirror,
        chunks=ChunkPolicy(threshold_bytes=1 << 20, chunk_chars=1 << 19),
        attempt=1,
        spool=SpoolReader.open(mirror, commit),
    )
    cpu, wall = time.process_time(), time.perf_counter()
    sent = await delivery.run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await sender.aclose()
    await pool.close()
    return sent, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--no-spool", action="store_true")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="docora-delivery-loop-") as tmp,
        embedded_postgres(Path(tmp) / "pg", keep=False) as url,
    ):
        apply_migrations(url)
        mirror, commit = fetched_mirror(Path(tmp), args.files, text_size=(4500, 5500))
        snapshot(url, mirror, commit, spool=not args.no_spool)
        with node_receiver("--verify", KEY) as port:
            sent, wall, cpu = asyncio.run(deliver(url, port, mirror, commit, args.batch))
    source = "git" if args.no_spool else "the spool"
    mode = "batch" if args.batch else "single"
    print(
        f"{sent:,} events ({mode}, blobs from {source}) in {wall:.2f} s = {sent / wall:,.0f}/s,"
        f" worker CPU {cpu / sent * 1e6:.0f} us per event"
    )


if __name__ == "__main__":
    main()
