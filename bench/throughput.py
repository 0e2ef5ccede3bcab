"""Initial-sync throughput as users run Docora, and status reads under load.

    python bench/throughput.py                 # 10k files: 3 receivers x concurrency 1 and 8
    python bench/throughput.py --status        # + resync -> synced, status GETs during a 50k sync
    python bench/throughput.py --large         # + 50k files / ~205 MB at concurrency 8
    python bench/throughput.py --only verify:8 # one scenario (receiver:concurrency)
    python bench/throughput.py --batch         # apps in batch delivery mode (SPEC 11)
    python bench/throughput.py --huge          # + 50k files and a 500 MB binary, verify:8

Separate `docora api` and `docora worker` processes on an embedded Postgres (or
DATABASE_URL), SCAN_INTERVAL_MS=1000, and Node receivers (bench/receiver.js) that read each
body whole and JSON.parse it: `parse` answers at once, `verify` also checks the HMAC
signature, `slow` verifies and answers after 5 ms. Each scenario registers a fresh copy of
the repository (10,000 text files of ~5 KB + 20 binaries of 200 KB, repacked as a hosted
repository would be) with a new app, so every figure includes fetch, hashing and snapshot.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    KEY,
    free_port,
    onboard_app,
    postgres,
    service_environment,
    wait_http,
)
from bench.memory import PeakRss  # noqa: E402
from bench.synth import make_repository  # noqa: E402
from docora.deliver.content import chunk_count  # noqa: E402
from docora.migrate import apply_migrations  # noqa: E402

HUGE_BYTES = 500 * 1000 * 1000
CHUNK_CHARS = 524_288  # BINARY_CHUNK_SIZE_BYTES, the default
RECEIVERS = {"parse": [], "verify": ["--verify", KEY], "slow": ["--verify", KEY, "--delay-ms", "5"]}


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds of every `postgres` process on this machine (the embedded server's),
    the live ones: a backend that exited meanwhile is not counted."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() == "postgres":
                    total += process_cpu(int(proc.name))
            except (OSError, ValueError):
                continue
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - idle) / hz, sum(ticks) / hz


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]


class Service:
    """`docora api`, `docora worker` and the Node receivers, on one database; remotes are
    served over smart HTTP by a git server process of their own (bench/git_server.py), as
    a hosted remote is, or read as file:// URLs (then the remote's side of every fetch,
    pack-objects, runs under the worker's own git)."""

    def __init__(self, root: Path, database_url: str, transport: str = "http") -> None:
        self.root = root
        self.transport = transport
        self.git_base = ""
        self.database_url = database_url
        self.api_port = free_port()
        self.receiver_ports = {mode: free_port() for mode in RECEIVERS}
        # MAX_FILE_SIZE_BYTES: the --huge scenario's 500 MB binary is a file to send.
        self.env = service_environment(
            root,
            database_url,
            self.api_port,
            SCAN_INTERVAL_MS="1000",
            MAX_FILE_SIZE_BYTES=str(600 * 1000 * 1000),
        )
        self.procs: dict[str, subprocess.Popen] = {}
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=60)

    def __enter__(self) -> Service:
        if self.transport == "http":
            self.procs["git"] = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "git_server.py"), str(self.root / "repos")],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self.procs["git"].stdout is not None
            self.git_base = f"http://127.0.0.1:{int(self.procs['git'].stdout.readline())}"
        for mode, port in self.receiver_ports.items():
            script = str(ROOT / "bench" / "receiver.js")
            self.procs[mode] = subprocess.Popen(["node", script, str(port), *RECEIVERS[mode]])
        command = [sys.executable, "-m", "docora"]
        self.procs["api"] = subprocess.Popen([*command, "api"], env=self.env)
        # The worker logs at info: its "snapshot of ..." line gives the sync job's steps.
        self.worker_log = Path(os.environ.get("BENCH_WORKER_LOG", self.root / "worker.log"))
        self.procs["worker"] = subprocess.Popen(
            [*command, "worker"],
            env={**self.env, "LOG_LEVEL": "info"},
            stderr=self.worker_log.open("w"),
        )
        wait_http(f"http://127.0.0.1:{self.api_port}/health")
        for port in self.receiver_ports.values():
            wait_http(f"http://127.0.0.1:{port}/_stats")
        return self

    def __exit__(self, *exc) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def receiver(self, mode: str, route: str = "/_stats") -> dict:
        return httpx.get(f"http://127.0.0.1:{self.receiver_ports[mode]}{route}").json()

    def worker_cpu(self) -> float:
        return process_cpu(self.procs["worker"].pid)

    def receiver_cpu(self, mode: str) -> float:
        return process_cpu(self.procs[mode].pid)

    def profile(self, output: Path) -> subprocess.Popen:
        """py-spy sampling the worker until interrupted (raw collapsed stacks)."""
        output.parent.mkdir(parents=True, exist_ok=True)
        pid = str(self.procs["worker"].pid)
        args = [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "-p",
            pid,
            "-r",
            "250",
            "--gil",
            "-f",
            "raw",
            "-o",
            str(output),
        ]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # attached before the first request
        return proc

    def onboard(
        self, name: str, mode: str, concurrency: int, delivery_mode: str = "single"
    ) -> dict[str, str]:
        base_url = f"http://127.0.0.1:{self.receiver_ports[mode]}/hooks"
        return onboard_app(self.api, name, base_url, concurrency, delivery_mode)

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def job_seconds(self, task: str, repository_id: str) -> float:
        """Wall time of the first job of `task` for the repository (started -> finished)."""
        rows = self.sql(
            """
            SELECT extract(epoch FROM max(e.at) FILTER (WHERE e.type IN ('succeeded', 'failed'))
                                   - min(e.at) FILTER (WHERE e.type = 'started'))
            FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id
            WHERE j.task_name = %s AND j.args->>'repository_id' = %s
            GROUP BY j.id ORDER BY j.id LIMIT 1
            """,
            (task, repository_id),
        )
        return float(rows[0][0]) if rows and rows[0][0] is not None else float("nan")

    def sync_steps(self, repository_id: str) -> str:
        """fetch / list / hash / apply times of the repository's first snapshot."""
        for line in self.worker_log.read_text().splitlines():
            found = re.search(rf"snapshot of {repository_id} .*?; (fetch [^;]*)", line)
            if found:
                return found.group(1)
        return "?"

    def wait_synced(self, headers: dict[str, str], rid: str, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (
                self.api.get(f"/api/repositories/{rid}", headers=headers).json()["status"]
                == "synced"
            ):
                return time.time()
            time.sleep(0.01)
        raise RuntimeError(f"{rid} never reached synced")


def copy_of(service: Service, repository: Path, name: str) -> str:
    """A fresh copy of the remote for one scenario: nothing cached by an earlier one."""
    if service.git_base:  # served as http://…/acme/{name}, a hosted repository's shape
        target = service.root / "repos" / "acme" / name
        shutil.copytree(repository, target)
        return f"{service.git_base}/acme/{name}"
    target = repository.parent / f"{name}.git"
    shutil.copytree(repository, target)
    return f"file://{target}"


def initial_sync(
    service: Service,
    repository: Path,
    mode: str,
    concurrency: int,
    total: int,
    profile: Path | None = None,
    delivery_mode: str = "single",
):
    name = f"{mode}-c{concurrency}-{delivery_mode}-{time.monotonic_ns()}"
    headers = service.onboard(name, mode, concurrency, delivery_mode)
    url = copy_of(service, repository, name)
    # Start from a quiet machine: the copy written out, the last scenario's tail done.
    os.sync()
    time.sleep(3)
    service.receiver(mode, "/_reset")
    profiler = service.profile(profile / f"{name}.raw") if profile else None
    cpu0, receiver0, machine0 = service.worker_cpu(), service.receiver_cpu(mode), machine_busy()
    postgres0 = postgres_cpu()
    started = time.time()
    with PeakRss(service.procs["worker"].pid) as memory:
        answer = service.api.post("/api/repositories", headers=headers, json={"github_url": url})
        answer.raise_for_status()
        rid = answer.json()["repository_id"]
        deadline = time.monotonic() + 900
        while (stats := service.receiver(mode))["count"] < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{stats['count']} of {total} events arrived")
            time.sleep(0.02)
    cpu = service.worker_cpu() - cpu0
    receiver_cpu = service.receiver_cpu(mode) - receiver0
    database_cpu = postgres_cpu() - postgres0
    busy, whole = (b - a for a, b in zip(machine0, machine_busy(), strict=True))
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)
        summarize(profile / f"{name}.raw")
    synced = service.wait_synced(headers, rid)
    delivery = stats["last"] - stats["first"]
    return {
        "total": stats["last"] - started,
        "first": stats["first"] - started,
        "sync_job": service.job_seconds("docora.sync_repository", rid),
        "steps": service.sync_steps(rid),
        "delivery": delivery,
        "rate": (total - 1) / max(delivery, 1e-9),
        "cpu": cpu,
        "cpu_per_event_ms": cpu / total * 1000,
        "to_synced": synced - stats["last"],
        "receiver_cpu_ms": receiver_cpu / total * 1000,
        "postgres_cpu_ms": database_cpu / total * 1000,
        "machine_busy": busy / whole,
        "bad_signatures": stats["bad_signatures"],
        "rss": memory.worker / 2**20,
        "tree_rss": memory.tree / 2**20,
        "tree_at_peak": memory.composition(),
        "requests": stats["requests"],
        "bytes_per_request": stats["bytes"] / max(1, stats["requests"]),
        "rid": rid,
        "headers": headers,
    }


def summarize(raw: Path, top: int = 25) -> None:
    """Print where the worker's samples went: by module (inclusive: a sample counts once for
    every module on its stack) and by function (self: the frame that was running)."""
    by_module: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")  # "function (path/module.py:line)"
        by_function[frames[-1]] += int(count)
        modules = {frame.rpartition("(")[2].rpartition(":")[0] for frame in frames}
        for module in modules:
            by_module[module] += int(count)
    samples = by_function.total()
    print(f"  profile {raw.name}: {samples} samples")
    for name, n in by_module.most_common(top):
        print(f"    {100 * n / samples:5.1f}% incl  {name}")
    for name, n in by_function.most_common(top):
        print(f"    {100 * n / samples:5.1f}% self  {name}")


def report(label: str, r: dict) -> None:
    print(
        f"{label}: registration -> last create {r['total']:.2f} s"
        f" (first event at {r['first']:.2f} s)"
        f" | sync job {r['sync_job']:.2f} s ({r['steps']})"
        f" | delivery {r['delivery']:.2f} s = {r['rate']:,.0f} events/s"
        f" | worker CPU {r['cpu']:.1f} s = {r['cpu_per_event_ms']:.2f} ms/event"
        f" | receiver CPU {r['receiver_cpu_ms']:.2f} ms/event"
        f" | Postgres CPU {r['postgres_cpu_ms']:.2f} ms/event"
        f" | machine busy {100 * r['machine_busy']:.0f} %"
        f" | last create -> synced {r['to_synced']:.2f} s"
        f" | peak RSS: worker {r['rss']:.0f} MB, with its git processes {r['tree_rss']:.0f} MB"
        f" ({r['tree_at_peak']})"
        f" | {r['requests']:,} requests, {r['bytes_per_request'] / 1000:,.1f} KB each"
        + (f" | BAD SIGNATURES {r['bad_signatures']}" if r["bad_signatures"] else ""),
        flush=True,
    )


def resync_rounds(service: Service, headers: dict[str, str], rid: str, rounds: int) -> list[float]:
    """POST resync, then poll the watch every 10 ms until it reads synced with a new
    last_scanned_at: what a client waiting for a resync sees (no change in the repository)."""
    times = []
    for _ in range(rounds):
        before = service.api.get(f"/api/repositories/{rid}", headers=headers).json()
        started = time.perf_counter()
        service.api.post(f"/api/repositories/{rid}/resync", headers=headers).raise_for_status()
        while True:
            now = service.api.get(f"/api/repositories/{rid}", headers=headers).json()
            if now["status"] == "synced" and now["last_scanned_at"] != before["last_scanned_at"]:
                break
            time.sleep(0.01)
        times.append((time.perf_counter() - started) * 1000)
        if times[-1] > 250:
            print(f"  slow resync round: {times[-1]:.0f} ms at {time.time():.3f}", flush=True)
        time.sleep(0.2)
    return times


def status_reads_during(service: Service, repository: Path, total: int) -> list[float]:
    """Time every `GET /api/repositories/{id}` (one every 20 ms) while the repository's
    initial sync runs, from registration to `synced`."""
    headers = service.onboard(f"status-{time.monotonic_ns()}", "parse", 8)
    url = copy_of(service, repository, f"status-{time.monotonic_ns()}")
    service.receiver("parse", "/_reset")
    rid = service.api.post("/api/repositories", headers=headers, json={"github_url": url}).json()[
        "repository_id"
    ]
    latencies: list[float] = []
    with httpx.Client(base_url=service.api.base_url, timeout=60, headers=headers) as client:
        while True:
            started = time.perf_counter()
            status = client.get(f"/api/repositories/{rid}").json()["status"]
            latencies.append((time.perf_counter() - started) * 1000)
            if status == "synced" and service.receiver("parse")["count"] >= total:
                return latencies
            time.sleep(0.02)


def build(root: Path, name: str, count: int, size: tuple[int, int], big: int = 0) -> Path:
    started = time.perf_counter()
    path = root / "repos" / f"{name}-source.git"
    make_repository(path, count, text_size=size, big_binary=big)
    subprocess.run(["git", "-C", str(path), "repack", "-adq"], check=True)
    packed = sum(f.stat().st_size for f in path.rglob("*.pack")) / 1e6
    took = time.perf_counter() - started
    print(f"{name}: {count:,} files, {packed:.0f} MB packed ({took:.0f} s to build)")
    fetch_reference(path)
    return path


def fetch_reference(path: Path) -> None:
    """What git alone takes: a plain shallow clone of the same repository, and within it
    the "server" side (pack-objects), which a local bare repository runs on our cores."""
    target = path.parent / f"{path.name}-clone"
    started = time.perf_counter()
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", "--depth", "1", f"file://{path}", str(target)],
        check=True,
    )
    clone = time.perf_counter() - started
    shutil.rmtree(target)
    started = time.perf_counter()
    subprocess.run(
        ["git", "-C", str(path), "pack-objects", "--revs", "--stdout", "-q"],
        input=b"refs/heads/main\n",
        stdout=subprocess.DEVNULL,
        check=True,
    )
    packing = time.perf_counter() - started
    print(
        f"  git clone --depth 1 of it: {clone * 1000:.0f} ms,"
        f" of which the server side's pack-objects alone: {packing * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--only", action="append", help="receiver:concurrency, e.g. verify:8")
    parser.add_argument("--status", action="store_true", help="resync rounds + status reads")
    parser.add_argument("--large", action="store_true", help="also 50k files / ~205 MB")
    parser.add_argument("--huge", action="store_true", help="also 50k files plus one 500 MB binary")
    parser.add_argument("--profile", type=Path, help="py-spy the worker; raw stacks go here")
    parser.add_argument(
        "--batch", action="store_true", help="apps in batch delivery mode (SPEC 11)"
    )
    parser.add_argument(
        "--transport",
        choices=("http", "file"),
        default="http",
        help="remotes over smart HTTP from a git server process (default), or file://",
    )
    args = parser.parse_args()
    scenarios = [(m, c) for m in RECEIVERS for c in (1, 8)]
    if args.only:
        scenarios = [(s.split(":")[0], int(s.split(":")[1])) for s in args.only]
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="docora-throughput-") as tmp,
        postgres(Path(tmp)) as url,
    ):
        root = Path(tmp)
        apply_migrations(url)
        small = build(root, "10k", args.files, (4500, 5500))
        total = args.files + 20
        with Service(root, url, args.transport) as service:
            last = None
            for mode, concurrency in scenarios:
                delivery_mode = "batch" if args.batch else "single"
                last = initial_sync(
                    service, small, mode, concurrency, total, args.profile, delivery_mode
                )
                report(f"{args.files // 1000}k {mode} c{concurrency} {delivery_mode}", last)
            if args.status and last is not None:
                times = resync_rounds(service, last["headers"], last["rid"], 20)
                print(
                    f"resync -> synced (no change, {args.files:,} files, 20 rounds): "
                    f"p50 {statistics.median(times):.0f} ms, p99 {percentile(times, 0.99):.0f} ms,"
                    f" max {max(times):.0f} ms"
                )
            if args.large or args.status:
                large = build(root, "50k", 50_000, (3600, 4400))
            if args.status:
                reads = status_reads_during(service, large, 50_020)
                print(
                    f"status GET during a 50k initial sync ({len(reads)} reads): "
                    f"p50 {statistics.median(reads):.1f} ms, p99 {percentile(reads, 0.99):.1f} ms,"
                    f" max {max(reads):.1f} ms"
                )
            if args.large:
                delivery_mode = "batch" if args.batch else "single"
                r = initial_sync(service, large, "verify", 8, 50_020, None, delivery_mode)
                report(f"50k verify c8 {delivery_mode}", r)
            if args.huge:
                huge = build(root, "50k+500MB", 50_000, (3600, 4400), big=HUGE_BYTES)
                # The 500 MB file arrives as chunks, each a request the receiver counts.
                events = 50_020 + chunk_count(HUGE_BYTES, CHUNK_CHARS)
                delivery_mode = "batch" if args.batch else "single"
                r = initial_sync(service, huge, "verify", 8, events, None, delivery_mode)
                report(f"50k + 500 MB binary verify c8 {delivery_mode}", r)


if __name__ == "__main__":
    main()
