"""Docora benchmark suite: `python bench/run.py` prints one table (see docs/performance.md).

Runs the real service (`docora all` on an embedded Postgres) against a loopback receiver
(bench/receiver.py, another process) that answers 200 at once. Repositories are
deterministic and synthetic. Use `--quick` for a smaller run while developing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import Stack, stack
from bench.synth import files, make_repository, modify_one
from docora.scan.snapshot import read_facts

ROWS: list[tuple[str, str, str]] = []  # (measure, figure, target)


def row(measure: str, figure: str, target: str = "") -> None:
    ROWS.append((measure, figure, target))
    print(f"  {measure}: {figure}  {target}", flush=True)


def wait_synced(s: Stack, rid: str, count: int = 1, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = s.sql(
            "SELECT count(*) FROM watches WHERE repository_id = %s AND status = 'synced'", (rid,)
        )[0][0]
        if done >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{rid} not synced")


def bare_post_loop(s: Stack, dump: Path) -> float:
    """The baseline: the same bodies, POSTed one by one over one keep-alive connection."""
    bodies = []
    data = dump.read_bytes()
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        bodies.append(data[pos + 4 : pos + 4 + length])
        pos += 4 + length

    async def loop() -> float:
        url = f"http://127.0.0.1:{s.receiver_port}/hooks/create"
        headers = {"Content-Type": "application/json", "X-Docora-Signature": "sha256=" + "0" * 64}
        async with httpx.AsyncClient() as client:
            started = time.perf_counter()
            for body in bodies:
                (await client.post(url, content=body, headers=headers)).raise_for_status()
            return len(bodies) / (time.perf_counter() - started)

    return asyncio.run(loop())


def initial_sync(s: Stack, repo: Path, count: int, mb: float) -> tuple[str, dict[str, str]]:
    first: tuple[str, dict[str, str]] = ("", {})
    for concurrency in (1, 8):
        s.reset_receiver()
        headers = s.onboard(f"initial c{concurrency}", concurrency)
        cpu0, started = s.cpu_seconds(), time.monotonic()
        rid = s.register(headers, f"file://{repo}")
        last = s.wait_events(count)
        stats = s.stats()
        wall = last - started
        rate = stats["count"] / max(1e-9, stats["last"] - stats["first"])
        scan = "scan + delivery" if concurrency == 1 else "delivery only (snapshot exists)"
        row(
            f"10k initial sync, concurrency {concurrency}: registration -> last event",
            f"{wall:.2f} s ({scan})",
            "<= 5 s",
        )
        row(
            f"10k initial sync, concurrency {concurrency}: events/s",
            f"{rate:,.0f}",
            ">= 0.7x bare loop" if concurrency == 1 else ">= 3,000",
        )
        row(
            f"10k initial sync, concurrency {concurrency}: files/s, MB/s",
            f"{count / wall:,.0f} files/s, {mb / wall:.1f} MB/s",
        )
        row(
            f"10k initial sync, concurrency {concurrency}: worker CPU",
            f"{s.cpu_seconds() - cpu0:.1f} s",
        )
        wait_synced(s, rid, 2 if concurrency == 8 else 1)
        if concurrency == 1:
            first = (rid, headers)
            dump = s.root / "bodies.bin"
            s.receiver.get("/_dump", params={"file": str(dump)})
            baseline = bare_post_loop(s, dump)
            row("bare keep-alive POST loop, same bodies", f"{baseline:,.0f} events/s")
            row("ratio events/s, concurrency 1 / bare loop", f"{rate / baseline:.2f}", ">= 0.7")
    return first


def hashing(mirror: Path, count: int) -> None:
    oids = subprocess.run(
        ["git", "-C", str(mirror), "ls-tree", "-r", "--object-only", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    blobs = [content for _, content in files(count)]
    total = sum(len(b) for b in blobs)
    started = time.perf_counter()
    facts = asyncio.run(read_facts(mirror, oids))
    ours = time.perf_counter() - started
    assert len(facts) == len(oids)
    started = time.perf_counter()
    for content in blobs:
        hashlib.sha256(content).hexdigest()
    in_memory = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        archive = f"git -C {mirror} archive refs/heads/main | tar -x -C {tmp}"
        subprocess.run(archive, shell=True, check=True)
        started = time.perf_counter()
        subprocess.run(
            f"cd {tmp} && find . -type f -print0 | xargs -0 sha256sum > /dev/null",
            shell=True,
            check=True,
        )
        sha256sum = time.perf_counter() - started
    mb = total / 1e6
    row(
        "hashing 10k repo from git (read + SHA-256 + binary check)",
        f"{mb / ours:.0f} MB/s ({ours * 1000:.0f} ms)",
    )
    row("hashlib.sha256 over the same bytes in memory", f"{mb / in_memory:.0f} MB/s")
    row("sha256sum over the same files on disk", f"{mb / sha256sum:.0f} MB/s")
    row("ratio ours / hashlib in memory", f"{in_memory / ours:.2f}", ">= 0.5")
    row("ratio ours / sha256sum", f"{sha256sum / ours:.2f}")


def noop_rescans(s: Stack, rid: str, headers: dict[str, str], rounds: int = 30) -> None:
    fetches = s.sql(
        "SELECT fetch_count, blobs_hashed FROM snapshots WHERE repository_id = %s", (rid,)
    )
    cpu0 = s.cpu_seconds()
    walls = []
    for _ in range(rounds):
        before = s.sql("SELECT max(id) FROM procrastinate_jobs")[0][0]
        s.resync(headers, rid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = s.sql(
                "SELECT extract(epoch FROM max(e.at) FILTER (WHERE e.type = 'succeeded') "
                "- max(e.at) FILTER (WHERE e.type = 'started')) FROM procrastinate_events e "
                "JOIN procrastinate_jobs j ON j.id = e.job_id "
                "WHERE j.id > %s AND j.task_name = 'docora.sync_repository' GROUP BY j.id",
                (before,),
            )
            if done and done[0][0] is not None:
                walls.append(float(done[0][0]) * 1000)
                break
            time.sleep(0.01)
    cpu = (s.cpu_seconds() - cpu0) / rounds * 1000
    after = s.sql(
        "SELECT fetch_count, blobs_hashed FROM snapshots WHERE repository_id = %s", (rid,)
    )
    row(
        "no-change rescan: sync job wall (median, p95)",
        f"{statistics.median(walls):.1f} ms, {sorted(walls)[int(len(walls) * 0.95) - 1]:.1f} ms",
        "<= 20 ms",
    )
    row("no-change rescan: worker CPU per rescan (incl. the API call)", f"{cpu:.1f} ms")
    row(
        "no-change rescan: fetches / blobs hashed",
        f"{after[0][0] - fetches[0][0]} / {after[0][1] - fetches[0][1]}",
        "0 / 0",
    )


def many_unchanged(s: Stack, count: int) -> None:
    headers = s.onboard("many repos", 1)
    started = time.monotonic()
    for i in range(count):
        path = s.root / "many" / f"r{i:04d}.git"
        make_repository(path, 1, binaries=0, seed=i)
        s.register(headers, f"file://{path}")
    s.wait_events(count, timeout=600)
    deadline = time.monotonic() + 600
    while s.sql("SELECT count(*) FROM watches WHERE status = 'synced'")[0][0] < count:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    row(
        f"{count} small repositories: register + initial sync",
        f"{time.monotonic() - started:.1f} s",
    )
    marker = s.sql("SELECT now()")[0][0]
    s.sql(
        "UPDATE watches SET next_check_at = now() WHERE app_id IN "
        "(SELECT id FROM apps WHERE name = 'many repos')"
    )
    started = time.monotonic()
    while s.sql("SELECT count(*) FROM watches WHERE last_scanned_at > %s", (marker,))[0][0] < count:
        assert time.monotonic() - started < 600
        time.sleep(0.1)
    row(
        f"{count} unchanged repositories rescanned (scheduler)",
        f"{time.monotonic() - started:.1f} s",
        "<= 30 s",
    )


def one_change(s: Stack, label: str, repo: Path, head: str, rid: str, headers) -> float:
    target = "src/m05/f000005.txt"
    commit = modify_one(repo, head, target, f"changed at {time.time()}\n".encode())
    started = time.monotonic()
    s.resync(headers, rid)
    arrived = s.wait_arrival(target, started)
    latency = arrived - started
    row(f"1 modified file, {label}: resync -> event", f"{latency * 1000:.0f} ms", "<= 1 s (50k)")
    wait_synced(s, rid)
    del commit
    return latency


def fan_out(s: Stack, count: int) -> None:
    repo = s.root / "fanout" / "shared.git"
    make_repository(repo, count, seed=99)
    s.reset_receiver()
    apps = [s.onboard(f"fan-out app {i}", 1) for i in range(8)]
    started = time.monotonic()
    rid = ""
    for headers in apps:
        rid = s.register(headers, f"file://{repo}")
    last = s.wait_events(8 * (count + 20), timeout=1800)
    passes = s.sql(
        "SELECT fetch_count, blobs_hashed FROM snapshots WHERE repository_id = %s", (rid,)
    )[0]
    row(
        "8 apps x 10k repository: registration -> last event",
        f"{last - started:.1f} s "
        f"({8 * (count + 20):,} events, {8 * (count + 20) / (last - started):,.0f}/s)",
    )
    row(
        "8 apps x 10k repository: fetch passes / blobs hashed",
        f"{passes[0]} / {passes[1]:,}",
        f"1 / {count + 20:,}",
    )


def scheduler_tick(s: Stack, watches: int) -> None:
    s.sql(
        "INSERT INTO apps (id, name, base_url, email, token_digest, client_auth_key_enc) "
        "SELECT 'app_' || lpad(to_hex(i), 24, '0'), 'tick ' || i, 'http://x', 'a@b.c', "
        "sha256(i::text::bytea), '\\x01' FROM generate_series(1, 100) i"
    )
    s.sql(
        "INSERT INTO repositories (id, url, host, owner, name, branch) "
        "SELECT 'repo_' || lpad(to_hex(i), 24, '0'), 'https://example.com/o/r' || i, "
        "'example.com', 'o', 'r' || i, 'main' FROM generate_series(1, %s) i",
        (watches // 100,),
    )
    s.sql(
        "INSERT INTO watches (app_id, repository_id, status, next_check_at) "
        "SELECT a.id, r.id, 'synced', now() + interval '1 hour' FROM apps a, repositories r "
        "WHERE a.name LIKE 'tick %%' AND r.url LIKE 'https://example.com/%%'"
    )
    s.sql("ANALYZE watches")
    import psycopg

    from docora.jobs.queue import SYNC_LOCK_PREFIX
    from docora.store.checks import CLAIM_DUE

    params = {"lease": 300000, "limit": 1000, "sync_lock_prefix": SYNC_LOCK_PREFIX}
    with psycopg.connect(s.database_url, autocommit=True) as conn:
        times = []
        for _ in range(50):
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(CLAIM_DUE, params).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        plan = conn.execute("EXPLAIN " + CLAIM_DUE, params).fetchall()
    uses_index = any("watches_next_check_at_idx" in line[0] for line in plan)
    total = s.sql("SELECT count(*) FROM watches")[0][0]
    row(
        f"rescan claim, {total:,} watches, none due (median of 50)",
        f"{statistics.median(times):.2f} ms (index scan: {uses_index})",
        "<= 50 ms",
    )


def big_repository(count: int, big_binary: int) -> None:
    env = {"SCAN_CONCURRENCY": "5", "MAX_FILE_SIZE_BYTES": str(300 * 1024 * 1024)}
    with stack(env) as s:
        repo = s.root / "big" / "large.git"
        started = time.monotonic()
        # 50,000 files / ~500 MB: text, twenty 5.5 MB binaries and one huge binary.
        make_repository(repo, count, binary_size=5_500_000, big_binary=big_binary, seed=5)
        size = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
        sizes = files(count, binary_size=5_500_000, big_binary=big_binary, seed=5)
        total_mb = sum(len(c) for _, c in sizes) / 1e6
        row(
            f"{count // 1000}k repository generated",
            f"{total_mb:.0f} MB of files, "
            f"{size / 1e6:.0f} MB packed, {time.monotonic() - started:.0f} s",
        )
        headers = s.onboard("big repo app", 8)
        started = time.monotonic()
        rid = s.register(headers, f"file://{repo}")
        wait_synced(s, rid, timeout=1800)
        wall = time.monotonic() - started
        row(
            f"{count // 1000}k / {total_mb:.0f} MB initial sync (concurrency 8)",
            f"{wall:.1f} s, {s.stats()['count']:,} requests",
        )
        row(
            f"{count // 1000}k / {total_mb:.0f} MB: peak worker RSS",
            f"{s.peak_rss_mb():.0f} MB",
            "<= 200 MB",
        )
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        one_change(s, f"{count // 1000}k repository", repo, head, rid, headers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller repositories")
    args = parser.parse_args()
    quick = args.quick
    print(
        f"machine: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"{platform.python_implementation()} {platform.python_version()}",
        flush=True,
    )
    ten_k = 2_000 if quick else 10_000
    with stack({"SCAN_INTERVAL_MS": "1000"}, keep_bodies=True) as s:
        repos = {}
        for label, count in (("1k", 1_000), ("10k", ten_k)):
            path = s.root / "repos" / f"{label}.git"
            repos[label] = (path, make_repository(path, count))
        total_mb = sum(len(c) for _, c in files(ten_k)) / 1e6
        rid_10k, headers_10k = initial_sync(s, repos["10k"][0], ten_k + 20, total_mb)
        mirror = next(p for p in (s.root / "mirrors").rglob("*.git") if "/10k/" in str(p))
        hashing(mirror, ten_k)
        headers = s.onboard("rescans", 1)
        rid_1k = s.register(headers, f"file://{repos['1k'][0]}")
        wait_synced(s, rid_1k)
        noop_rescans(s, rid_1k, headers)
        one_change(s, "1k repository", repos["1k"][0], repos["1k"][1], rid_1k, headers)
        one_change(s, "10k repository", repos["10k"][0], repos["10k"][1], rid_10k, headers_10k)
        fan_out(s, ten_k)
        many_unchanged(s, 100 if quick else 1000)
        scheduler_tick(s, 10_000)
    big_repository(5_000 if quick else 50_000, (20 if quick else 200) * 1024 * 1024)
    print("\n| measure | figure | target |\n|---|---|---|")
    for measure, figure, target in ROWS:
        print(f"| {measure} | {figure} | {target} |")


if __name__ == "__main__":
    main()
