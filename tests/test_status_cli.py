"""`docora status` as an operator runs it over ssh: the console's overview and failing
watches in the terminal, `--json` with the operator API's numbers, and a clear line when
Postgres cannot be reached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from docora.admin.models import AdminWatchItem, OverviewBody
from docora.bodies import CircuitBreakerBody, LfsBody
from docora.status_cli import StatusReport, as_text
from tests.admin import ADMIN, add_history, populate


def _status(database_url: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "docora", "status", *args],
        env={**os.environ, "DATABASE_URL": database_url, "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_status_tells_what_the_console_tells(client, db, database_url):
    data = populate(client, db)
    add_history(db, data["apps"]["alpha"], data["repos"]["docs"], minutes=30, per_minute=2)
    done = _status(database_url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    overview = client.get("/api/admin/overview", headers=ADMIN).json()
    for key in ("apps", "repositories", "watches", "circuit_breakers_open", "queue"):
        assert report["overview"][key] == overview[key], key
    assert report["overview"]["deliveries_last_hour"] == overview["deliveries_last_hour"]
    failing = client.get("/api/admin/watches?status=failed,retrying", headers=ADMIN).json()
    assert report["failing"] == failing["items"]
    assert report["failing_total"] == len(report["failing"]) == 2

    text = _status(database_url)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("Docora status at ") and lines[0].endswith(" UTC")
    assert "Watches     1 failed · 1 retrying · 1 scanning · 1 pending · 1 synced" in lines
    assert "System      3 apps · 4 repositories · 1 circuit breakers open" in lines
    deliveries = overview["deliveries_last_hour"]
    assert (
        f"Deliveries  {deliveries['succeeded']} delivered · {deliveries['failed']} failed "
        "in the last hour"
    ) in lines
    (failed,) = [line for line in lines if line.startswith("failed ")]
    assert "alpha" in failed and "acme/broken (main)" in failed
    assert failed.endswith("git auth: the host refused")

    one = _status(database_url, "--limit", "1")
    assert "… and 1 more" in one.stdout


def test_a_long_error_is_cut_to_the_terminal():
    overview = OverviewBody(
        apps=1,
        repositories=1,
        watches={"pending_snapshot": 0, "scanning": 0, "synced": 0, "retrying": 0, "failed": 1},
        circuit_breakers_open=0,
        queue={"todo": 0, "doing": 0, "failed": 0},
        workers_alive=1,
        deliveries_last_hour={"succeeded": 0, "failed": 0},
        rescan_lag_seconds=0.0,
        generated_at=datetime.now(UTC),
    )
    item = AdminWatchItem(
        repository_id="repo_" + "0" * 24,
        github_url="https://git.example/acme/docs",
        owner="acme",
        name="docs",
        branch="main",
        is_private=False,
        status="failed",
        last_error="x" * 500,
        last_scanned_at=None,
        commit_sha=None,
        retry_count=5,
        created_at=datetime.now(UTC),
        paths=None,
        app_id="app_" + "0" * 24,
        app_name="docs site",
        circuit_breaker=CircuitBreakerBody("closed", 0, None),
        files_delivered=0,
        pending_changes=None,
        lfs=LfsBody(0, 0),
    )
    text = as_text(StatusReport(overview, [item], 1), width=100)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert text.splitlines()[-1].endswith("x…")


def test_status_without_a_database_says_so_without_the_url(tmp_path):
    done = _status("postgresql://ops:hunter2-password@127.0.0.1:1/docora", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "docora: database unreachable (OperationalError)"
    assert "hunter2" not in done.stdout + done.stderr
